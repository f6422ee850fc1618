"""One request to the provider (``whizrouter.transport``): the key header, redirects, the
retry rule, timeouts and connection errors."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from tests.client.conftest import TO
from whizrouter.client import WhizardClient
from whizrouter.errors import MessageValidationError, ProviderError, RateLimited, WhizrouterError
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
    # The client gives up on a request before the fake records it; under load the last may
    # still be on its way.
    assert len(await onprem.wait_for(1 + TEST_RETRY.attempts)) == 1 + TEST_RETRY.attempts


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


async def test_a_body_json_cannot_carry_is_a_validation_error(onprem: FakeProvider) -> None:
    async with onprem.client() as client:
        with pytest.raises(MessageValidationError, match="cannot be sent as JSON"):
            await client.send_text(TO, "lone surrogate \ud800")
    assert onprem.sent == []
