"""The console provider answers like the API, in both shapes, and prints one line per call."""

from __future__ import annotations

import io

import pytest

from whizrouter import ProviderError
from whizrouter.console_provider import console_provider
from whizrouter.defaults import ApiShape
from whizrouter.testing import TEST_RETRY


@pytest.mark.parametrize("shape", ["onprem", "cloud"])
async def test_every_call_is_answered_and_printed(shape: ApiShape) -> None:
    out = io.StringIO()
    async with console_provider(shape, out=out) as fake, fake.client(retry=TEST_RETRY) as client:
        first = await client.send_text("15551230001", "hello")
        await client.send_buttons("15551230001", "Pick", [("a", "A")])
        await client.mark_read("wamid.IN1")
        await client.set_webhook(
            "https://bot.example.com/webhook", headers={"Authorization": "Basic c2VjcmV0"}
        )
        assert (await client.get_webhook())["url"] == "https://bot.example.com/webhook"
    assert first == "wamid.fake-1"
    assert out.getvalue().splitlines() == [
        "[provider] send text to 15551230001: 'hello' -> wamid.fake-1",
        "[provider] send buttons to 15551230001: 'Pick' [A] (a) -> wamid.fake-2",
        "[provider] mark read wamid.IN1",
        "[provider] set webhook https://bot.example.com/webhook with headers Authorization: ***",
        "[provider] read webhook configuration",
    ]
    assert "c2VjcmV0" not in out.getvalue()


async def test_a_refused_call_shows_its_status() -> None:
    out = io.StringIO()
    async with console_provider("onprem", out=out, prefix="call") as fake:
        fake.fail_next(400)
        async with fake.client(retry=TEST_RETRY) as client:
            with pytest.raises(ProviderError):
                await client.send_text("15551230001", "hello")
    assert out.getvalue() == "[call] send text to 15551230001: 'hello' (answered 400)\n"
