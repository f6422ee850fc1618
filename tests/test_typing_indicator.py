"""The typing indicator as a handler uses it: ``await ctx.typing()`` and
``async with ctx.typing():``, on Cloud (sent) and on-premises (nothing sent)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.defaults import ApiShape
from whizrouter.testing import StartBot, graph_error_body


def typing_app(
    form: str, *, interval: float = 0.05, wait_for: int = 3
) -> tuple[WhizRouter, dict[str, Any]]:
    """A bot that shows typing while it "thinks", and what it saw (``state``); the test puts
    the fake provider into ``state["provider"]``."""
    app = WhizRouter(plugins=["mark-read"])
    state: dict[str, Any] = {"seen": []}

    @app.on_message(type="text")
    async def slow(message: TextMessage, ctx: Context) -> None:
        if form == "await":
            await ctx.typing()
        else:
            async with ctx.typing(interval=interval):
                # The slow work: here, until the fake has seen the indicator `wait_for` times
                # (on Cloud), or a moment (on-premises, where nothing is sent).
                provider = state["provider"]
                if ctx.client.shape == "cloud":
                    await provider.wait_for(lambda c: c.kind == "typing", count=wait_for)
                state["seen"].append(len(provider.typing))
        await ctx.reply("done")

    return app, state


@pytest.mark.parametrize("shape", ["cloud", "onprem"])
async def test_await_sends_one_indicator_on_cloud_and_none_on_premises(
    bot_tester: StartBot, shape: ApiShape
) -> None:
    app, _ = typing_app("await")
    bot = await bot_tester(app, shape=shape)
    assert await bot.text("think about it") == ["done"]
    message_id = bot.provider.marked_read
    assert len(message_id) == 1  # mark-read stays once per message
    if shape == "cloud":
        [call] = [c for c in bot.provider.calls if c.kind == "typing"]
        assert call.json == {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id[0],
            "typing_indicator": {"type": "text"},
        }
        assert bot.provider.typing == message_id
    else:
        assert bot.provider.typing == []
        assert [c.kind for c in bot.provider.calls] == ["send", "mark_read"]


async def test_async_with_keeps_the_indicator_up_until_the_block_ends(
    bot_tester: StartBot,
) -> None:
    app, state = typing_app("with", interval=0.05, wait_for=3)
    bot = await bot_tester(app, shape="cloud")
    state["provider"] = bot.provider
    assert await bot.text("a long question") == ["done"]
    typing = [c for c in bot.provider.calls if c.kind == "typing"]
    assert len(typing) >= 3
    assert all(b.at - a.at >= 0.04 for a, b in itertools.pairwise(typing))
    # Once the block has ended, no more indicators: three intervals pass without one.
    count = len(bot.provider.typing)
    await asyncio.sleep(0.15)
    assert len(bot.provider.typing) == count
    assert len(bot.provider.marked_read) == 1


async def test_async_with_sends_nothing_on_premises(bot_tester: StartBot) -> None:
    app, state = typing_app("with")
    bot = await bot_tester(app, shape="onprem")
    state["provider"] = bot.provider
    assert await bot.text("a long question") == ["done"]
    assert state["seen"] == [0]
    assert [c.kind for c in bot.provider.calls] == ["send", "mark_read"]


async def test_a_failing_indicator_never_fails_the_handler(
    bot_tester: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = typing_app("await")
    bot = await bot_tester(app, shape="cloud")
    bot.provider.fail_next(400, graph_error_body(100, "typing not allowed"), path="/messages")
    assert await bot.text("hi") == ["done"]
    assert "could not show the typing indicator" in caplog.text


def test_the_interval_must_be_positive() -> None:
    from whizrouter import Typing, WhizardClient

    with pytest.raises(ValueError, match="positive"):
        Typing(WhizardClient("k", "http://127.0.0.1:1", "cloud"), "wamid.1", interval=0)
