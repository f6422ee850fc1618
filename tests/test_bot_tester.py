"""The ``bot_tester`` fixture as a bot author uses it: retries, shapes, plugins, dead letters."""

from __future__ import annotations

import time

import pytest

from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter, WhizrouterError
from whizrouter.bot_tester import StartBot
from whizrouter.testing import FakeProvider, text_callback


def failing_bot() -> WhizRouter:
    app = WhizRouter()

    # A production-sized schedule: 3 s, then 6 s. The tester keeps the 2 retries, not the waits.
    @app.on_message(type="text", retry=RetryPolicy(attempts=2, base=3.0, jitter=False))
    async def broken(message: TextMessage, ctx: Context) -> None:
        raise RuntimeError(f"cannot handle {message.text.body!r}")

    return app


async def test_a_handlers_own_retry_policy_keeps_its_attempts_not_its_waits(
    bot_tester: StartBot,
) -> None:
    bot = await bot_tester(failing_bot(), timeout=3.0)
    started = time.monotonic()
    assert await bot.text("boom") == []
    assert time.monotonic() - started < 3.0
    [letter] = await bot.dead_letters()
    assert letter.handler.endswith("broken")
    assert letter.attempts == 3
    assert "cannot handle 'boom'" in letter.error


async def test_the_same_app_is_tested_again_after_the_first_tester_closed(
    bot_tester: StartBot,
) -> None:
    app = failing_bot()
    first = await bot_tester(app, timeout=3.0)
    with pytest.raises(WhizrouterError, match="running already"):
        await bot_tester(app)
    await first.close()
    second = await bot_tester(app, timeout=3.0)
    assert await second.text("again") == []
    assert [letter.attempts for letter in await second.dead_letters()] == [3]


def echo_bot() -> WhizRouter:
    app = WhizRouter(plugins=["mark-read"])

    @app.on_message(type="text")
    async def echo(message: TextMessage, ctx: Context) -> None:
        await ctx.reply("echo: " + message.text.body)

    return app


async def test_cloud_shape_and_coalesced_mark_read_are_seen_by_send(
    bot_tester: StartBot,
) -> None:
    bot = await bot_tester(echo_bot(), shape="cloud")
    assert bot.provider.shape == "cloud"
    body = text_callback("hi", shape="cloud")
    calls = await bot.send(body)
    # mark-read waits 0.25 s on Cloud to coalesce a burst; send() flushes it.
    assert [call.kind for call in calls] == ["send", "mark_read"]
    message_id = body["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert bot.provider.marked_read == [message_id]
    assert bot.replies == ["echo: hi"]


async def test_a_shape_that_contradicts_the_provider_is_refused() -> None:
    from whizrouter.bot_tester import BotTester

    with pytest.raises(ValueError, match="contradicts the 'onprem' provider"):
        BotTester(echo_bot(), provider=FakeProvider(shape="onprem"), shape="cloud")
