"""The ``bot_tester`` fixture as a bot author uses it: retries, shapes, plugins, dead letters,
failures, timeouts, and the app given back as it was."""

from __future__ import annotations

import asyncio
import time

import pytest

from whizrouter import (
    Context,
    InteractiveMessage,
    RateLimited,
    RetryPolicy,
    TextMessage,
    WhizRouter,
    WhizrouterError,
)
from whizrouter.testing import (
    BotTester,
    FakeProvider,
    HandlerFailedError,
    StartBot,
    text_callback,
)


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
    bot = await bot_tester(failing_bot(), timeout=3.0, raise_errors=False)
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
    second = await bot_tester(app, timeout=3.0, raise_errors=False)
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
    with pytest.raises(ValueError, match="contradicts the 'onprem' provider"):
        BotTester(echo_bot(), provider=FakeProvider(shape="onprem"), shape="cloud")


async def test_a_handler_that_gives_up_fails_the_test_by_default(bot_tester: StartBot) -> None:
    bot = await bot_tester(failing_bot())
    with pytest.raises(HandlerFailedError, match="broken gave up on message event m:") as caught:
        await bot.text("boom")
    assert "after 3 attempts: RuntimeError: cannot handle 'boom'" in str(caught.value)
    assert "raise_errors=False" in str(caught.value)
    [letter] = caught.value.dead_letters
    assert letter.attempts == 3


async def test_retry_decisions_are_production_ones_without_the_waits(
    bot_tester: StartBot,
) -> None:
    # A Retry-After of 2 s: production waits and retries (the handler's and the client's
    # policies allow it); the test sees the same outcome at once.
    app = WhizRouter()
    attempts: list[int] = []

    @app.on_message(type="text")
    async def answer(message: TextMessage, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RateLimited(429, "slow down", retry_after=2)
        await ctx.reply("ok")

    bot = await bot_tester(app)
    started = time.monotonic()
    assert await bot.text("hi") == ["ok"]
    assert attempts == [1, 2]
    bot.provider.fail_next(429, headers={"Retry-After": "2"})
    assert await bot.text("again") == ["ok"]  # the client retried the send
    sends = [call.status for call in bot.provider.calls if call.kind == "send"]
    assert sends == [200, 429, 200]
    assert time.monotonic() - started < 1.0


async def test_closing_the_tester_gives_the_app_its_own_parts_back() -> None:
    own_retry = RetryPolicy(attempts=2, base=3.0)
    app = WhizRouter(
        inbox="memory", api_key="k", base_url="https://whizard.example", retry=own_retry
    )

    @app.on_message(type="text", retry=RetryPolicy(attempts=1, base=5.0))
    async def echo(message: TextMessage, ctx: Context) -> None:
        await ctx.reply(message.text.body)

    settings = app.settings
    async with BotTester(app) as bot:
        assert app.client.base_url == bot.provider.base_url
        assert app.retry.time_scale == 0
        assert await bot.text("hi") == ["hi"]
    assert app.retry is own_retry
    assert app.settings is settings
    assert app.client.base_url == "https://whizard.example"
    [spec] = app.router.handlers()
    assert spec.retry == RetryPolicy(attempts=1, base=5.0)
    assert app.inbox.description == "memory"


async def test_a_handler_that_does_not_settle_is_named(bot_tester: StartBot) -> None:
    app = WhizRouter()
    release = asyncio.Event()

    @app.on_message(type="text")
    async def stuck(message: TextMessage, ctx: Context) -> None:
        await release.wait()

    bot = await bot_tester(app, timeout=0.2)
    with pytest.raises(
        AssertionError, match=r"within 0.2 s; still running: m:wamid\.\w+ in .*stuck"
    ):
        await bot.text("hi")
    release.set()


async def test_texts_sent_at_the_same_time_get_their_own_replies(bot_tester: StartBot) -> None:
    bot = await bot_tester(echo_bot())
    first, second = await asyncio.gather(
        bot.text("a", wa_id="15550000001"), bot.text("b", wa_id="15550000002")
    )
    assert (first, second) == (["echo: a"], ["echo: b"])


async def test_any_message_type_in_the_testers_shape(bot_tester: StartBot) -> None:
    app = WhizRouter()
    seen: list[InteractiveMessage] = []

    @app.on_message(type="interactive")
    async def choice(message: InteractiveMessage, ctx: Context) -> None:
        seen.append(message)
        await ctx.reply("you chose " + (message.reply_id or "?"))

    bot = await bot_tester(app, shape="cloud")
    reply = {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}
    calls = await bot.message("interactive", reply)
    [sent] = calls
    assert sent.json["text"]["body"] == "you chose yes"
    assert seen[0].shape == "cloud"
