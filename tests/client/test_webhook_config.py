"""Reading and setting the webhook configuration; its credentials never show
(``whizrouter.webhook_config``)."""

from __future__ import annotations

import base64

import orjson
import pytest

from whizrouter.client import WhizardClient
from whizrouter.errors import ProviderError
from whizrouter.testing import FakeProvider, meta_error_body


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
