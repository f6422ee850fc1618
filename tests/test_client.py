"""WhizardClient against the fake provider: bodies of both shapes, validation, errors, retries."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from whizrouter.backoff import RetryPolicy
from whizrouter.client import WhizardClient
from whizrouter.client_errors import error_from_response, parse_retry_after
from whizrouter.errors import (
    ConfigurationError,
    MessageValidationError,
    ProviderError,
    RateLimited,
    WhizrouterError,
)
from whizrouter.settings import check_webhook_url
from whizrouter.testing import (
    TEST_RETRY,
    FakeBody,
    FakeProvider,
    errors_list_body,
    free_port,
    graph_error_body,
    html_error_page,
    meta_error_body,
    rate_limit_400_body,
    restarting_555_body,
)

TO = "4915112345678"
NO_RETRY = RetryPolicy(attempts=0)
Send = Callable[[WhizardClient], Awaitable[Any]]


@pytest.fixture(params=["onprem", "cloud"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeProvider]:
    """A running fake provider of each shape."""
    async with FakeProvider(shape=request.param) as provider:
        yield provider


@pytest.fixture
async def client(fake: FakeProvider) -> AsyncIterator[WhizardClient]:
    """A client of the fake's shape, with millisecond retries."""
    async with fake.client() as api:
        yield api


@pytest.fixture
async def onprem() -> AsyncIterator[FakeProvider]:
    """A running on-premises fake provider."""
    async with FakeProvider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _no_whizard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WHIZARD_API_KEY", "WHIZARD_BASE_URL", "WHIZARD_API_SHAPE"):
        monkeypatch.delenv(name, raising=False)


def envelope(shape: str, kind: str, content: Any, reply_to: str | None = None) -> dict[str, Any]:
    """The body a send of ``kind`` must produce in ``shape``."""
    body: dict[str, Any] = {"recipient_type": "individual", "to": TO, "type": kind, kind: content}
    if shape == "cloud":
        body["messaging_product"] = "whatsapp"
        if reply_to is not None:
            body["context"] = {"message_id": reply_to}
    return body


# --------------------------------------------------------------------------- bodies


async def test_text_bodies_differ_by_shape(fake: FakeProvider, client: WhizardClient) -> None:
    message_id = await client.send_text(TO, "hello", preview_url=True, reply_to="wamid.Q")
    [call] = fake.sent
    assert message_id == call.message_id == "wamid.fake-1"
    assert call.headers["WHIZARD-KEY"] == "test-key"
    if fake.shape == "onprem":
        assert call.method == "POST"
        assert call.path == "/v1/messages"
        assert call.json == {
            "recipient_type": "individual",
            "to": TO,
            "type": "text",
            "text": {"body": "hello"},
            "preview_url": True,
        }
    else:
        assert call.path == "/messages"
        assert call.json == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": TO,
            "type": "text",
            "text": {"body": "hello", "preview_url": True},
            "context": {"message_id": "wamid.Q"},
        }


async def test_template_bodies_differ_by_shape(fake: FakeProvider, client: WhizardClient) -> None:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]
    await client.send_template(
        TO, name="order_update", language="en", components=components, namespace="ns-1"
    )
    [call] = fake.sent
    if fake.shape == "onprem":
        template = {
            "namespace": "ns-1",
            "name": "order_update",
            "language": {"policy": "deterministic", "code": "en"},
            "components": components,
        }
    else:
        template = {"name": "order_update", "language": {"code": "en"}, "components": components}
    assert call.json == envelope(fake.shape, "template", template)


SECTIONS = [
    {"title": "Drinks", "rows": [{"id": "tea", "title": "Tea", "description": "Hot"}]},
    {"title": "Food", "rows": [{"id": "cake", "title": "Cake"}]},
]

SENDS: list[tuple[str, Send, str, Any]] = [
    (
        "image",
        lambda c: c.send_image(TO, id="media-1", caption="look", reply_to="wamid.Q"),
        "image",
        {"id": "media-1", "caption": "look"},
    ),
    (
        "video",
        lambda c: c.send_video(TO, link="https://x.test/v.mp4", reply_to="wamid.Q"),
        "video",
        {"link": "https://x.test/v.mp4"},
    ),
    (
        "audio",
        lambda c: c.send_audio(TO, id="media-2", reply_to="wamid.Q"),
        "audio",
        {"id": "media-2"},
    ),
    (
        "document",
        lambda c: c.send_document(
            TO, link="https://x.test/a.pdf", caption="bill", filename="a.pdf", reply_to="wamid.Q"
        ),
        "document",
        {"link": "https://x.test/a.pdf", "caption": "bill", "filename": "a.pdf"},
    ),
    (
        "sticker",
        lambda c: c.send_sticker(TO, id="st-1", reply_to="wamid.Q"),
        "sticker",
        {"id": "st-1"},
    ),
    (
        "location",
        lambda c: c.send_location(
            TO, 52.52, 13.405, name="Mitte", address="Berlin", reply_to="wamid.Q"
        ),
        "location",
        {"latitude": 52.52, "longitude": 13.405, "name": "Mitte", "address": "Berlin"},
    ),
    (
        "contacts",
        lambda c: c.send_contacts(TO, [{"name": {"formatted_name": "Ana"}}], reply_to="wamid.Q"),
        "contacts",
        [{"name": {"formatted_name": "Ana"}}],
    ),
    (
        "buttons",
        lambda c: c.send_buttons(
            TO,
            "Pick one",
            [("yes", "Yes"), ("no", "No")],
            header="Q",
            footer="F",
            reply_to="wamid.Q",
        ),
        "interactive",
        {
            "type": "button",
            "header": {"type": "text", "text": "Q"},
            "body": {"text": "Pick one"},
            "footer": {"text": "F"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no", "title": "No"}},
                ]
            },
        },
    ),
    (
        "list",
        lambda c: c.send_list(TO, "Menu", button="Open", sections=SECTIONS, reply_to="wamid.Q"),
        "interactive",
        {
            "type": "list",
            "body": {"text": "Menu"},
            "action": {"button": "Open", "sections": SECTIONS},
        },
    ),
]


@pytest.mark.parametrize(("name", "send", "kind", "content"), SENDS, ids=[s[0] for s in SENDS])
async def test_every_send_kind(
    fake: FakeProvider, client: WhizardClient, name: str, send: Send, kind: str, content: Any
) -> None:
    message_id = await send(client)
    [call] = fake.sent
    assert message_id == call.message_id
    # reply_to becomes a quoted reply on Cloud; the on-premises API has none.
    assert call.json == envelope(fake.shape, kind, content, reply_to="wamid.Q")


LISTED_FORMS: list[tuple[str, Send, Send]] = [
    (
        "buttons as a dict of titles by id",
        lambda c: c.send_buttons(TO, "Pick", {"yes": "Yes", "no": "No"}),
        lambda c: c.send_buttons(TO, "Pick", [("yes", "Yes"), ("no", "No")]),
    ),
    (
        "buttons as dict items, a generator and list pairs",
        lambda c: c.send_buttons(TO, "Pick", (pair for pair in {"yes": "Yes"}.items())),
        lambda c: c.send_buttons(TO, "Pick", [["yes", "Yes"]]),  # type: ignore[list-item]
    ),
    (
        "sections as a tuple, rows as a generator",
        lambda c: c.send_list(
            TO,
            "Menu",
            button="Open",
            sections=({"rows": (row for row in [{"id": "tea", "title": "Tea"}])},),
        ),
        lambda c: c.send_list(
            TO, "Menu", button="Open", sections=[{"rows": [{"id": "tea", "title": "Tea"}]}]
        ),
    ),
    (
        "sections as dict values",
        lambda c: c.send_list(TO, "Menu", button="Open", sections={"a": SECTIONS[0]}.values()),
        lambda c: c.send_list(TO, "Menu", button="Open", sections=[SECTIONS[0]]),
    ),
    (
        "template components as a tuple",
        lambda c: c.send_template(TO, name="hi", language="en", components=({"type": "body"},)),
        lambda c: c.send_template(TO, name="hi", language="en", components=[{"type": "body"}]),
    ),
    (
        "contacts as a generator",
        lambda c: c.send_contacts(TO, (card for card in [{"name": {"formatted_name": "Ana"}}])),
        lambda c: c.send_contacts(TO, [{"name": {"formatted_name": "Ana"}}]),
    ),
    (
        "preview_url as 1",
        lambda c: c.send_text(TO, "see https://x.test", preview_url=1),  # type: ignore[arg-type]
        lambda c: c.send_text(TO, "see https://x.test", preview_url=True),
    ),
]


@pytest.mark.parametrize(
    ("name", "send", "as_list"), LISTED_FORMS, ids=[form[0] for form in LISTED_FORMS]
)
async def test_any_iterable_builds_what_a_list_builds(
    fake: FakeProvider, client: WhizardClient, name: str, send: Send, as_list: Send
) -> None:
    await send(client)
    await as_list(client)
    first, second = fake.sent
    assert first.json == second.json


async def test_reaction_and_its_removal(fake: FakeProvider, client: WhizardClient) -> None:
    await client.send_reaction(TO, "wamid.IN", "👍")
    await client.send_reaction(TO, "wamid.IN", "")
    first, second = fake.sent
    assert first.json == envelope(fake.shape, "reaction", {"message_id": "wamid.IN", "emoji": "👍"})
    assert second.json == envelope(fake.shape, "reaction", {"message_id": "wamid.IN", "emoji": ""})


async def test_low_level_send_fills_the_envelope(fake: FakeProvider, client: WhizardClient) -> None:
    message_id = await client.send({"to": TO, "type": "text", "text": {"body": "raw"}})
    [call] = fake.sent
    assert message_id == call.message_id
    assert call.json == envelope(fake.shape, "text", {"body": "raw"})


async def test_mark_read(fake: FakeProvider, client: WhizardClient) -> None:
    await client.mark_read("wamid.AB/c+d==")
    [call] = fake.calls
    if fake.shape == "onprem":
        assert (call.method, call.path, call.json) == (
            "PUT",
            "/v1/messages/wamid.AB/c+d==",
            {"status": "read"},
        )
    else:
        assert (call.method, call.path) == ("POST", "/messages")
        assert call.json == {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.AB/c+d==",
        }
    assert fake.marked_read == ["wamid.AB/c+d=="]


async def test_webhook_config_round_trip(fake: FakeProvider, client: WhizardClient) -> None:
    assert await client.get_webhook() == {}
    await client.set_webhook("https://bot.example.com/webhook", {"Authorization": "Basic eDp5"})
    await client.set_webhook("https://bot.example.com/other")
    assert await client.get_webhook() == {"url": "https://bot.example.com/other"}
    posts = [c for c in fake.calls if c.kind == "set_webhook"]
    assert [c.path for c in posts] == ["/v1/configs/webhook"] * 2
    assert posts[0].json == {
        "url": "https://bot.example.com/webhook",
        "headers": {"Authorization": "Basic eDp5"},
    }


async def test_an_answer_without_message_id_is_an_error(onprem: FakeProvider) -> None:
    onprem.fail_next(200, {"meta": {"api_status": "stable"}})
    async with onprem.client() as client:
        with pytest.raises(ProviderError, match="no message id") as caught:
            await client.send_text(TO, "hi")
    assert caught.value.http_code == 200


# --------------------------------------------------------------------------- validation

INVALID: list[tuple[Send, str]] = [
    (lambda c: c.send_text(TO, ""), "text body is empty"),
    (lambda c: c.send_text(TO, "x" * 4097), "4097 characters; the limit is 4096"),
    (lambda c: c.send_text("", "hi"), "recipient `to` is empty"),
    (lambda c: c.send_text("  ", "hi"), "recipient `to` is empty"),
    (lambda c: c.send_buttons(TO, "b", []), "1 to 3 buttons, got 0"),
    (lambda c: c.send_buttons(TO, "b", [(str(i), str(i)) for i in range(4)]), "got 4"),
    (lambda c: c.send_buttons(TO, "b", [("a", "x" * 21)]), "limit is 20"),
    (lambda c: c.send_buttons(TO, "b", [("a", "A"), ("a", "B")]), "'a' is used twice"),
    (lambda c: c.send_buttons(TO, "", [("a", "A")]), "body is empty"),
    (lambda c: c.send_list(TO, "b", button="Open", sections=[]), "at least one section"),
    (
        lambda c: c.send_list(TO, "b", button="Open", sections=[{"title": "S", "rows": []}]),
        "has no rows",
    ),
    (
        lambda c: c.send_list(
            TO,
            "b",
            button="Open",
            sections=[{"title": "S", "rows": [{"id": str(i), "title": "t"} for i in range(11)]}],
        ),
        "at most 10 rows in all, got 11",
    ),
    (
        lambda c: c.send_list(
            TO, "b", button="x" * 21, sections=[{"rows": [{"id": "a", "title": "A"}]}]
        ),
        "list button label has 21 characters",
    ),
    (
        lambda c: c.send_list(
            TO,
            "b",
            button="Open",
            sections=[
                {"title": "S", "rows": [{"id": "a", "title": "A"}, {"id": "a", "title": "B"}]}
            ],
        ),
        "used twice: a",
    ),
    (lambda c: c.send_image(TO), "exactly one of id= .* or link= .*, got neither"),
    (lambda c: c.send_image(TO, id="m", link="https://x.test/i.png"), "got both"),
    (lambda c: c.send_audio(TO, id="m", caption="no"), "audio messages cannot carry a caption"),
    (lambda c: c.send_sticker(TO, id="m", caption="no"), "sticker messages cannot carry a caption"),
    (lambda c: c.send_location(TO, 91.0, 0.0), "latitude must be a number from -90 to 90"),
    (lambda c: c.send_contacts(TO, []), "contacts is empty"),
    (lambda c: c.send_template(TO, name="", language="en"), "template name is empty"),
    (lambda c: c.send_reaction(TO, "", "👍"), "message id to react to is empty"),
    (lambda c: c.mark_read(""), "message id to mark read is empty"),
    # Wrong types: refused naming the argument, never sent or failing with a bare TypeError.
    (lambda c: c.send_text(TO, 42), "text body must be a string, not int"),  # type: ignore[arg-type]
    (lambda c: c.send_text(15550001, "hi"), "recipient `to` must be a string, not int"),  # type: ignore[arg-type]
    (lambda c: c.send_text(TO, "hi", preview_url="yes"), "preview_url must be True or False"),  # type: ignore[arg-type]
    (lambda c: c.send_text(TO, "hi", reply_to=7), "reply_to .* must be a string"),  # type: ignore[arg-type]
    (lambda c: c.send_image(TO, id=123), "image id must be a string, not int"),  # type: ignore[arg-type]
    (lambda c: c.send_document(TO, id="m", filename=5), "document filename must be a string"),  # type: ignore[arg-type]
    (lambda c: c.send_location(TO, 1.0, 2.0, name=3), "location name must be a string"),  # type: ignore[arg-type]
    (lambda c: c.send_contacts(TO, "oops"), "contacts must be a list of contact dicts, not str"),  # type: ignore[arg-type]
    (
        lambda c: c.send_template(TO, name="hello", language="en", components="oops"),  # type: ignore[arg-type]
        "components must be a list of component dicts",
    ),
    (
        lambda c: c.send_template(TO, name="hello", language="en", components=["oops"]),  # type: ignore[list-item]
        "components must be a list of component dicts",
    ),
    (lambda c: c.send_template(TO, name=None, language="en"), "template name must be a string"),  # type: ignore[arg-type]
    (lambda c: c.send_buttons(TO, "b", "ab"), "buttons must be a list of .id, title. pairs"),  # type: ignore[arg-type]
    (lambda c: c.send_buttons(TO, "b", 3), "buttons must be a list .* not int"),  # type: ignore[arg-type]
    (lambda c: c.send_buttons(TO, "b", ["ab"]), "every button must be an .id, title. pair"),  # type: ignore[list-item]
    (lambda c: c.send_text(TO, "hi", preview_url=2), "preview_url must be True or False"),  # type: ignore[arg-type]
    (
        lambda c: c.send_list(TO, "b", button="Open", sections={"rows": []}),  # type: ignore[dict-item]
        "sections must be a list of section dicts, not dict",
    ),
    (lambda c: c.send_buttons(TO, "b", [("a",)]), "every button must be an .id, title. pair"),  # type: ignore[list-item]
    (lambda c: c.send_buttons(TO, "b", [(1, "A")]), "a button id must be a string, not int"),  # type: ignore[list-item]
    (
        lambda c: c.send_list(TO, "b", button="Open", sections="oops"),  # type: ignore[arg-type]
        "sections must be a list of section dicts, not str",
    ),
    (
        lambda c: c.send_list(TO, "b", button="Open", sections=[["a"]]),  # type: ignore[list-item]
        "every section must be a dict with rows",
    ),
    (lambda c: c.send_reaction(TO, "wamid.1", None), "reaction emoji .* must be a string"),  # type: ignore[arg-type]
    (lambda c: c.mark_read(12), "message id to mark read is empty or not a string"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("send", "message"), INVALID)
async def test_invalid_messages_are_refused_before_sending(
    onprem: FakeProvider, send: Send, message: str
) -> None:
    async with onprem.client() as client:
        with pytest.raises(MessageValidationError, match=message) as caught:
            await send(client)
    assert "nothing was sent" in str(caught.value)
    assert onprem.calls == []


# --------------------------------------------------------------------------- error forms

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


async def test_a_wrong_key_is_a_401_naming_the_variable(onprem: FakeProvider) -> None:
    async with WhizardClient("wrong", onprem.base_url, retry=TEST_RETRY) as client:
        with pytest.raises(ProviderError, match="WHIZARD_API_KEY") as caught:
            await client.send_text(TO, "hi")
    assert caught.value.http_code == 401
    assert len(onprem.calls) == 1


async def test_a_redirect_is_not_followed(onprem: FakeProvider) -> None:
    onprem.fail_next(301, b"", headers={"Location": "https://elsewhere.test/v1/messages"})
    async with onprem.client() as client:
        with pytest.raises(ProviderError, match="WHIZARD_BASE_URL") as caught:
            await client.send_text(TO, "hi")
    assert caught.value.http_code == 301
    assert len(onprem.calls) == 1


def test_error_parser_reads_camel_case_meta_with_an_errors_list() -> None:
    body = (
        b'{"meta":{"httpCode":400,"developerMessage":"bad","details":"one"},'
        b'"errors":[{"code":"1009","title":"Parameter value is not valid"}]}'
    )
    info = error_from_response(400, "Bad Request", body, {})
    assert (info.developer_message, info.code) == ("bad", 1009)
    assert info.details == ["one", "Parameter value is not valid"]
    assert not info.retryable


# --------------------------------------------------------------------------- retry rule


async def test_a_400_rate_limit_is_retried_and_succeeds(onprem: FakeProvider) -> None:
    onprem.fail_next(400, rate_limit_400_body())
    async with onprem.client() as client:
        assert await client.send_text(TO, "hi") == "wamid.fake-1"
    assert [c.status for c in onprem.calls] == [400, 200]


async def test_a_400_invalid_parameter_is_never_retried(onprem: FakeProvider) -> None:
    onprem.fail_next(400, errors_list_body(1009, "Parameter value is not valid"), times=5)
    async with onprem.client() as client:
        with pytest.raises(ProviderError) as caught:
            await client.send_text(TO, "hi")
    assert len(onprem.calls) == 1
    assert not caught.value.retryable
    assert caught.value.code == 1009


async def test_555_is_retried(onprem: FakeProvider) -> None:
    onprem.fail_next(555, restarting_555_body(), times=2)
    async with onprem.client() as client:
        assert await client.send_text(TO, "hi") == "wamid.fake-1"
    assert [c.status for c in onprem.calls] == [555, 555, 200]


async def test_429_honours_retry_after(onprem: FakeProvider) -> None:
    onprem.fail_next(429, meta_error_body(429, "Too many requests"), headers={"Retry-After": "1"})
    async with onprem.client() as client:
        await client.send_text(TO, "hi")
    first, second = onprem.calls
    assert second.at - first.at >= 0.95


async def test_a_retry_after_beyond_the_policy_gives_up_at_once(onprem: FakeProvider) -> None:
    onprem.fail_next(429, meta_error_body(429, "slow down"), headers={"Retry-After": "120"})
    async with onprem.client() as client:
        with pytest.raises(RateLimited) as caught:
            await client.send_text(TO, "hi")
    assert caught.value.retry_after == 120
    assert len(onprem.calls) == 1


async def test_rate_limits_raise_rate_limited_after_the_retries(onprem: FakeProvider) -> None:
    onprem.fail_next(400, rate_limit_400_body(seconds=6), times=10, headers={"Retry-After": "0"})
    async with onprem.client() as client:
        with pytest.raises(RateLimited) as caught:
            await client.send_text(TO, "hi")
    assert len(onprem.calls) == 1 + TEST_RETRY.attempts
    assert caught.value.http_code == 400
    assert caught.value.retry_after == 0.0  # the header wins over the message


def test_a_rate_limit_message_gives_the_wait_when_no_header_does() -> None:
    body = orjson.dumps(rate_limit_400_body(seconds=6))
    info = error_from_response(400, "Bad Request", body, {})
    assert (info.rate_limited, info.retryable, info.retry_after) == (True, True, 6.0)
    assert isinstance(info.to_exception(), RateLimited)


@pytest.mark.parametrize("code", [1011, 1014, 1015, 1016, 1017, 1018, 1023])
async def test_onprem_transient_codes_are_retried(onprem: FakeProvider, code: int) -> None:
    onprem.fail_next(500 if code != 1015 else 429, errors_list_body(code, "transient"))
    async with onprem.client() as client:
        await client.send_text(TO, "hi")
    assert len(onprem.calls) == 2


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (130429, RateLimited),
        (131056, RateLimited),
        (80007, RateLimited),
        (4, RateLimited),
        (131000, ProviderError),
        (1, ProviderError),
        (2, ProviderError),
    ],
)
async def test_cloud_transient_codes_are_retried(
    code: int, error_type: type[ProviderError]
) -> None:
    async with FakeProvider(shape="cloud") as cloud, cloud.client() as client:
        cloud.fail_next(400, graph_error_body(code, "transient"), times=10)
        with pytest.raises(error_type) as caught:
            await client.send_text(TO, "hi")
        assert type(caught.value) is error_type
        assert caught.value.retryable
        assert len(cloud.calls) == 1 + TEST_RETRY.attempts


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, meta_error_body(401, "Invalid api key")),
        (403, meta_error_body(403, "Blocked endpoint")),
        (400, meta_error_body(400, "API disabled due to lack of payment")),
        (404, errors_list_body(1006, "Resource not found")),
        (400, errors_list_body(1008, "Required parameter is missing")),
        (400, errors_list_body(1013, "User is not valid")),
        (400, errors_list_body(1026, "Receiver incapable")),
        (400, errors_list_body(470, "Outside the window")),
        (400, errors_list_body(480, "Identity changed")),
        (400, errors_list_body(2000, "Template param count mismatch")),
        (400, graph_error_body(131047, "Re-engagement message")),
        (400, graph_error_body(131026, "Message undeliverable")),
        (400, graph_error_body(131051, "Unsupported message type")),
        (400, graph_error_body(131009, "Parameter value is not valid")),
        (400, graph_error_body(100, "Invalid parameter")),
        (401, graph_error_body(190, "Access token has expired")),
        (408, b""),
    ],
)
async def test_other_4xx_are_never_retried(
    onprem: FakeProvider, status: int, body: FakeBody
) -> None:
    onprem.fail_next(status, body, times=5)
    async with onprem.client() as client:
        with pytest.raises(ProviderError) as caught:
            await client.send_text(TO, "hi")
    assert type(caught.value) is ProviderError
    assert len(onprem.calls) == 1


async def test_a_timeout_is_retried_and_may_duplicate_the_send(onprem: FakeProvider) -> None:
    onprem.delay_next(2.0)
    async with onprem.client(timeout=0.2) as client:
        assert await client.send_text(TO, "hi") == "wamid.fake-2"
    # The provider took the first, timed-out attempt too: the documented duplicate.
    assert [c.message_id for c in onprem.sent] == ["wamid.fake-1", "wamid.fake-2"]


async def test_timeouts_end_in_a_provider_error_with_http_code_0(onprem: FakeProvider) -> None:
    onprem.delay_next(5.0, times=10)
    async with onprem.client(timeout=0.1) as client:
        with pytest.raises(ProviderError, match=r"no answer within 0\.1 s") as caught:
            await client.mark_read("wamid.slow")
    assert isinstance(caught.value, WhizrouterError)
    assert caught.value.http_code == 0
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert len(onprem.calls) == 1 + TEST_RETRY.attempts


async def test_a_dropped_connection_is_retried(onprem: FakeProvider) -> None:
    onprem.drop_next()
    async with onprem.client() as client:
        await client.set_webhook("https://bot.example.com/webhook")
    assert len(onprem.calls) == 2


async def test_a_refused_connection_ends_in_a_provider_error() -> None:
    port = free_port()
    async with WhizardClient("k", f"http://127.0.0.1:{port}", retry=TEST_RETRY) as client:
        with pytest.raises(ProviderError, match="connection failed") as caught:
            await client.get_webhook()
    assert caught.value.http_code == 0
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)


async def test_retries_are_logged_at_warning_without_the_key(
    onprem: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    onprem.api_key = "s3cret-key-0042"
    onprem.fail_next(503, html_error_page(503))
    caplog.set_level(logging.DEBUG)
    async with onprem.client() as client:
        await client.send_text(TO, "hi")
    [record] = [r for r in caplog.records if r.name == "whizrouter.client"]
    assert record.levelno == logging.WARNING
    assert "retry 1 of 3" in record.getMessage()
    assert "503" in record.getMessage()
    assert "s3cret-key-0042" not in caplog.text


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


# --------------------------------------------------------------------------- configuration


async def test_a_missing_key_fails_at_the_first_call_naming_the_variable(
    onprem: FakeProvider,
) -> None:
    client = WhizardClient(base_url=onprem.base_url)  # construction never fails
    with pytest.raises(ConfigurationError, match="set WHIZARD_API_KEY"):
        await client.send_text(TO, "hi")
    await client.close()
    assert onprem.calls == []


async def test_a_missing_base_url_fails_at_the_first_call_naming_the_variable() -> None:
    async with WhizardClient(api_key="k") as client:
        with pytest.raises(ConfigurationError, match="set WHIZARD_BASE_URL"):
            await client.mark_read("wamid.x")


async def test_a_base_url_that_is_not_http_is_refused() -> None:
    async with WhizardClient("k", "ftp://files.example.com") as client:
        with pytest.raises(ConfigurationError, match=r"WHIZARD_BASE_URL.*http"):
            await client.get_webhook()


async def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeProvider(shape="cloud", api_key="env-key") as cloud:
        monkeypatch.setenv("WHIZARD_API_KEY", "env-key")
        monkeypatch.setenv("WHIZARD_BASE_URL", cloud.base_url + "/")
        monkeypatch.setenv("WHIZARD_API_SHAPE", "cloud")
        async with WhizardClient(retry=TEST_RETRY) as client:
            assert client.shape == "cloud"
            assert client.base_url == cloud.base_url
            await client.send_text(TO, "from env")
        assert [c.path for c in cloud.sent] == ["/messages"]


def test_the_shape_defaults_to_onprem() -> None:
    assert WhizardClient().shape == "onprem"


def test_an_unknown_shape_names_the_variable_and_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHIZARD_API_SHAPE", "graph")
    with pytest.raises(
        ConfigurationError, match="WHIZARD_API_SHAPE must be one of 'onprem', 'cloud'"
    ):
        WhizardClient()
    with pytest.raises(ConfigurationError, match="shape must be one of"):
        WhizardClient(shape="v2")  # type: ignore[arg-type]


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        WhizardClient(timeout=0)


async def test_the_key_never_shows(
    onprem: FakeProvider, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cret-key-0042"
    onprem.api_key = secret
    caplog.set_level(logging.DEBUG)
    for client in (
        WhizardClient(secret, onprem.base_url, retry=TEST_RETRY),
        WhizardClient(SecretStr(secret), onprem.base_url, retry=TEST_RETRY),
    ):
        assert secret not in repr(client)
        assert secret not in str(client)
        # A provider that echoes the key back in its error body gets it scrubbed.
        onprem.fail_next(503, b"")  # retried, and logged
        onprem.fail_next(400, meta_error_body(400, f"key {secret} is suspended"))
        async with client:
            with pytest.raises(ProviderError) as caught:
                await client.send_text(TO, "hi")
        assert "key *** is suspended" in str(caught.value)
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
        assert secret not in repr(caught.value.raw)
    monkeypatch.setenv("WHIZARD_API_KEY", secret)
    assert secret not in repr(WhizardClient())
    assert secret not in caplog.text


@pytest.mark.parametrize(
    "echo",
    [
        lambda secret: secret.replace("/", "\\/"),  # PHP's json_encode escapes slashes
        lambda secret: "".join(f"\\u{ord(ch):04x}" for ch in secret),  # all \u escapes
    ],
)
async def test_the_key_never_shows_when_echoed_json_escaped(
    onprem: FakeProvider, caplog: pytest.LogCaptureFixture, echo: Callable[[str], str]
) -> None:
    secret = "SeKrEtKeY/123+abc=="
    onprem.api_key = secret
    caplog.set_level(logging.DEBUG)
    body = b'{"meta": {"success": false, "http_code": 400, "developer_message": "key '
    body += echo(secret).encode() + b' is suspended", "details": ["' + echo(secret).encode()
    body += b'"]}}'
    onprem.fail_next(503, body)  # retried, and logged
    onprem.fail_next(400, body)
    async with WhizardClient(secret, onprem.base_url, retry=TEST_RETRY) as client:
        with pytest.raises(ProviderError) as caught:
            await client.send_text(TO, "hi")
    assert "key *** is suspended" in str(caught.value)
    for shown in (str(caught.value), repr(caught.value), repr(caught.value.raw), caplog.text):
        assert secret not in shown
        assert secret.replace("/", "\\/") not in shown


async def test_webhook_credentials_never_show_when_the_provider_echoes_them(
    onprem: FakeProvider,
) -> None:
    password = "PaSsWoRd-77"
    header = "Basic " + base64.b64encode(f"botuser:{password}".encode()).decode()
    url = "https://bot.example.com/webhook"
    echoed = orjson.dumps({"url": url, "headers": {"Authorization": header}})
    onprem.fail_next(
        400, meta_error_body(400, f"bad config {echoed.decode()} for botuser:{password}")
    )
    async with onprem.client() as client:
        with pytest.raises(ProviderError) as caught:
            await client.set_webhook(url, {"Authorization": header})
    message = str(caught.value)
    assert "bad config" in message
    for secret in (header, header.split()[1], password):
        assert secret not in message and secret not in repr(caught.value.raw)


def test_credentials_in_urls_are_refused_without_showing_them() -> None:
    with pytest.raises(ConfigurationError) as base:
        WhizardClient("key", "https://user:hunter22@waba.example.com")._transport._settings()
    assert "remove user:password@" in str(base.value) and "hunter22" not in str(base.value)
    with pytest.raises(ConfigurationError) as hook:
        check_webhook_url("https://user:hunter22@bot.example.com/webhook")
    assert "WHIZROUTER_WEBHOOK_USER" in str(hook.value) and "hunter22" not in str(hook.value)


# --------------------------------------------------------------------------- session


async def test_a_given_session_is_never_closed(onprem: FakeProvider) -> None:
    async with aiohttp.ClientSession() as session:
        async with WhizardClient("test-key", onprem.base_url, session=session) as client:
            await client.send_text(TO, "hi")
        assert not session.closed
        await client.send_text(TO, "again")  # the session is still there
    assert len(onprem.sent) == 2


async def test_the_own_session_is_closed_and_reopened(onprem: FakeProvider) -> None:
    client = onprem.client()
    await client.close()  # closing before any call is fine
    async with client:
        await client.send_text(TO, "one")
    async with client:
        await client.send_text(TO, "two")
    await client.close()
    assert len(onprem.sent) == 2


# --------------------------------------------------------------------------- benchmark


def test_the_benchmark_smoke_mode_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.client_overhead import main

    assert main(["--smoke"]) == 0
    output = capsys.readouterr().out
    assert "WhizardClient.send_text" in output
    assert "ratio" in output


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


async def test_a_body_json_cannot_carry_is_a_validation_error(onprem: FakeProvider) -> None:
    async with onprem.client() as client:
        with pytest.raises(MessageValidationError, match="cannot be sent as JSON"):
            await client.send_text(TO, "lone surrogate \ud800")
    assert onprem.sent == []
