"""Every form of provider error answer becomes one typed exception with a hint
(``whizrouter.client_errors``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import pytest

from tests.client.conftest import NO_RETRY, TO
from whizrouter.client_errors import error_from_response, parse_retry_after
from whizrouter.errors import ProviderError, RateLimited
from whizrouter.testing import (
    FakeBody,
    FakeProvider,
    errors_list_body,
    graph_error_body,
    html_error_page,
    meta_error_body,
    rate_limit_400_body,
    restarting_555_body,
)

ERROR_FORMS: list[tuple[str, int, FakeBody, dict[str, Any]]] = [
    (
        "meta snake_case",
        400,
        meta_error_body(400, "Parameter is invalid", ["to: must be a phone number"]),
        {"developer_message": "Parameter is invalid", "details": ["to: must be a phone number"]},
    ),
    (
        "meta camelCase",
        403,
        meta_error_body(403, "API disabled for this number", camel_case=True),
        {"developer_message": "API disabled for this number", "details": [], "code": None},
    ),
    (
        "errors list with meta",
        404,
        errors_list_body(1006, "Resource not found", "unknown media id"),
        {"developer_message": "Resource not found", "details": ["unknown media id"], "code": 1006},
    ),
    (
        "errors list alone, two errors",
        400,
        {
            "errors": [
                {"code": 1009, "title": "Parameter value is not valid"},
                {"code": 1008, "title": "Required parameter is missing", "details": "to"},
            ]
        },
        {
            "developer_message": "Parameter value is not valid",
            "details": ["1008: Required parameter is missing", "to"],
            "code": 1009,
        },
    ),
    (
        "graph error",
        400,
        graph_error_body(131047, "Re-engagement message", details="More than 24 hours"),
        {
            "developer_message": "Re-engagement message",
            "details": ["More than 24 hours"],
            "code": 131047,
        },
    ),
    (
        "html page",
        503,
        html_error_page(503),
        {"developer_message": "503 Service Temporarily Unavailable", "retryable": True},
    ),
    ("empty body", 502, b"", {"developer_message": "Bad Gateway", "retryable": True}),
    (
        "plain text",
        500,
        "upstream exploded\n  badly",
        {"developer_message": "upstream exploded badly", "retryable": True},
    ),
    (
        "555 restarting",
        555,
        restarting_555_body(),
        {
            "developer_message": "Internal service error: the WhatsApp client is restarting",
            "retryable": True,
        },
    ),
    ("555 empty", 555, b"", {"developer_message": "HTTP 555 with an empty body"}),
]


@pytest.mark.parametrize(
    ("status", "body", "expected"), [f[1:] for f in ERROR_FORMS], ids=[f[0] for f in ERROR_FORMS]
)
async def test_every_error_form_becomes_one_typed_exception(
    onprem: FakeProvider, status: int, body: FakeBody, expected: dict[str, Any]
) -> None:
    onprem.fail_next(status, body)
    async with onprem.client(retry=NO_RETRY) as client:
        with pytest.raises(ProviderError) as caught:
            await client.send_text(TO, "hi")
    error = caught.value
    assert type(error) is ProviderError
    assert error.http_code == status
    for name, value in expected.items():
        assert getattr(error, name) == value, name
    assert str(error).startswith(f"provider answered {status}")


@pytest.mark.parametrize(
    ("status", "body", "hint"),
    [
        (401, meta_error_body(401, "Invalid api key"), "check WHIZARD_API_KEY"),
        (400, errors_list_body(470, "Message failed to send"), "24-hour window.*send a template"),
        (400, graph_error_body(131047, "Re-engagement message"), "send a template"),
        (400, errors_list_body(480, "Identity changed"), "identity changed"),
        (400, errors_list_body(2001, "Template missing"), "template name"),
        (555, restarting_555_body(), "restarting"),
    ],
)
async def test_messages_carry_a_hint(
    onprem: FakeProvider, status: int, body: FakeBody, hint: str
) -> None:
    onprem.fail_next(status, body)
    async with onprem.client(retry=NO_RETRY) as client:
        with pytest.raises(ProviderError, match=hint):
            await client.send_text(TO, "hi")


def test_error_parser_reads_camel_case_meta_with_an_errors_list() -> None:
    body = (
        b'{"meta":{"httpCode":400,"developerMessage":"bad","details":"one"},'
        b'"errors":[{"code":"1009","title":"Parameter value is not valid"}]}'
    )
    info = error_from_response(400, "Bad Request", body, {})
    assert (info.developer_message, info.code) == ("bad", 1009)
    assert info.details == ["one", "Parameter value is not valid"]
    assert not info.retryable


def test_a_rate_limit_message_gives_the_wait_when_no_header_does() -> None:
    body = orjson.dumps(rate_limit_400_body(seconds=6))
    info = error_from_response(400, "Bad Request", body, {})
    assert (info.rate_limited, info.retryable, info.retry_after) == (True, True, 6.0)
    assert isinstance(info.to_exception(), RateLimited)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 30.0
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (400, b'{"meta": {"http_code": "' + b"9" * 5000 + b'"}}', {}),  # int() refuses
        (400, '{"meta": {"developer_message": "x", "code": "\u00b2"}}'.encode(), {}),
        (400, b'{"meta": {"details": ' + b"[" * 900 + b"]" * 900 + b"}}", {}),
        (429, b"", {"Retry-After": "Mon, 01 Jan 100000000000000000000 00:00:00 GMT"}),
        (502, b"><" + b"<" * 300_000, {}),  # was quadratic in the HTML clean-up
        (502, b"<title>" * 100_000, {}),
    ],
)
def test_hostile_error_answers_become_provider_errors_quickly(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    started = time.monotonic()
    error = error_from_response(status, "Bad", body, headers).to_exception()
    assert isinstance(error, ProviderError)
    assert error.http_code == status
    assert len(error.developer_message) <= 2000
    assert time.monotonic() - started < 1.0


def test_every_5xx_is_retried_and_the_reason_phrase_is_scrubbed() -> None:
    for status in (501, 520, 599):
        assert error_from_response(status, "x", b"", {}).retryable
    error = error_from_response(503, "upstream rejected KEY-123", b"", {}, secret="KEY-123")
    assert error.developer_message == "upstream rejected ***"
