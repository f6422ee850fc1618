"""Webhook registration at startup, against the fake provider over HTTP."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from whizrouter import BootstrapError, ConfigurationError, WhizRouter
from whizrouter.testing import FakeProvider, meta_error_body

MakeApp = Callable[..., WhizRouter]
URL = "https://bot.example.com/webhook"


def webhook_posts(provider: FakeProvider) -> int:
    return sum(1 for c in provider.calls if c.method == "POST" and c.path.endswith("webhook"))


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://bot.example.com/webhook", "https://"),
        ("https://bot.example.com:8443/webhook", "port 8443"),
        ("https:///nohost", "host name"),
    ],
)
def test_only_https_on_443_is_accepted(make_app: MakeApp, url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        make_app(webhook_url=url)


async def test_registers_url_and_basic_auth_once(make_app: MakeApp, provider: FakeProvider) -> None:
    app = make_app(webhook_url=URL, webhook_user="whizard", webhook_password="pw-123")
    async with app:
        pass
    expected = "Basic " + base64.b64encode(b"whizard:pw-123").decode()
    assert provider.webhook_config == {"url": URL, "headers": {"Authorization": expected}}
    assert webhook_posts(provider) == 1
    # Started again with the same settings: read, found equal, not written.
    async with make_app(webhook_url=URL, webhook_user="whizard", webhook_password="pw-123"):
        pass
    assert webhook_posts(provider) == 1
    gets = [c for c in provider.calls if c.method == "GET" and c.path.endswith("webhook")]
    assert len(gets) == 2


async def test_a_changed_url_is_written(make_app: MakeApp, provider: FakeProvider) -> None:
    async with make_app(webhook_url=URL):
        pass
    async with make_app(webhook_url="https://new.example.com/hook"):
        pass
    assert provider.webhook_config["url"] == "https://new.example.com/hook"
    assert webhook_posts(provider) == 2


async def test_provider_4xx_stops_startup_with_its_message(
    make_app: MakeApp, provider: FakeProvider
) -> None:
    provider.fail_next(
        403,
        meta_error_body(403, "Webhook URL is blocked for this number"),
        path="/v1/configs/webhook",
    )
    app = make_app(webhook_url=URL)
    with pytest.raises(BootstrapError, match="Webhook URL is blocked for this number"):
        await app.start()
    assert not app.started


async def test_bad_key_stops_startup(make_app: MakeApp) -> None:
    app = make_app(webhook_url=URL, api_key="wrong-key")
    with pytest.raises(BootstrapError) as info:
        await app.start()
    assert "wrong-key" not in str(info.value)


async def test_no_key_with_a_webhook_url_stops_startup_naming_the_variable(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WHIZARD_API_KEY", raising=False)
    app = WhizRouter(inbox="memory", webhook_url=URL, base_url="http://127.0.0.1:9")
    with pytest.raises(BootstrapError, match="WHIZARD_API_KEY"):
        await app.start()


async def test_5xx_is_retried_then_succeeds(make_app: MakeApp, provider: FakeProvider) -> None:
    provider.fail_next(503, meta_error_body(503, "restarting"), path="/v1/configs/webhook")
    async with make_app(webhook_url=URL):
        pass
    assert provider.webhook_config["url"] == URL


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (429, "rate limiting us (429): slow down; wait a minute"),
        (401, "refused the key (401): no; check WHIZARD_API_KEY"),
        (404, "refused the webhook registration (404): no; check WHIZROUTER_WEBHOOK_URL"),
        (501, "the provider failed (501): no; startup stops"),
    ],
)
async def test_a_failed_registration_says_what_happened_and_what_to_do(
    make_app: MakeApp, provider: FakeProvider, status: int, says: str
) -> None:
    message = "slow down" if status == 429 else "no"
    # Enough failures to outlast the client's retries of a 429 or a 5xx.
    provider.fail_next(
        status, meta_error_body(status, message), times=10, path="/v1/configs/webhook"
    )
    app = make_app(webhook_url=URL)
    app.replace_parts(client=provider.client())  # retries within milliseconds
    with pytest.raises(BootstrapError) as info:
        await app.start()
    assert says in str(info.value)
