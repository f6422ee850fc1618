"""Handler timeouts: a run past its time is cancelled, retried and dead-lettered, while the
other conversations flow; SIGTERM during a hanging handler still exits within the grace."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Recorder
from tests.process import BotProcess
from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter
from whizrouter.errors import ConfigurationError
from whizrouter.testing import FakeProvider, text_callback

MakeApp = Callable[..., WhizRouter]
Serve = Callable[[WhizRouter], Awaitable[Any]]


async def test_a_hanging_handler_is_cancelled_retried_and_dead_while_others_complete(
    make_app: MakeApp, serve: Serve, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(retry=RetryPolicy(attempts=1, base=0.01, jitter=False), concurrency=8)
    runs: list[float] = []
    cancelled = 0

    @app.on_message(text="hang", timeout=1.0)
    async def hang(message: TextMessage, ctx: Context) -> None:
        nonlocal cancelled
        runs.append(time.monotonic())
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise

    @app.on_message()
    async def work(message: TextMessage, ctx: Context) -> None:
        await asyncio.sleep(0.01)
        await recorder.add(message.text.body)

    client = await serve(app)
    hanging = text_callback("hang", wa_id="31600000000", message_id="wamid.hang")
    assert (await client.post("/webhook", json=hanging)).status == 200
    for n in range(50):
        callback = text_callback(f"n{n}", wa_id=f"3161{n:07d}", message_id=f"wamid.{n}")
        assert (await client.post("/webhook", json=callback)).status == 200
    done = await recorder.wait_for(50)
    assert sorted(done) == sorted(f"n{n}" for n in range(50))
    # All done while the hanging conversation still waits for its first timeout.
    assert len(runs) == 1 and cancelled == 0
    await app.dispatcher.wait_idle()  # type: ignore[union-attr]
    [dead] = await app.inbox.dead_letters()
    assert dead.attempts == 2 and cancelled == 2
    assert "HandlerTimeoutError" in dead.error and "within 1 s" in dead.error
    assert runs[1] - runs[0] >= 1.0
    assert time.monotonic() - runs[1] >= 1.0
    retried = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert retried and "did not finish within 1 s" in retried[0].getMessage()
    outcomes = app.dispatcher.handler_outcomes  # type: ignore[union-attr]
    name = hang.__module__ + "." + hang.__qualname__
    assert outcomes[(name, "timeout")] == 2 and outcomes[(name, "dead")] == 1
    assert not any(r.levelno >= logging.ERROR and r.exc_info for r in caplog.records)


async def test_the_apps_handler_timeout_applies_to_handlers_without_their_own(
    make_app: MakeApp, serve: Serve
) -> None:
    app = make_app(retry=RetryPolicy(attempts=0), handler_timeout=0.2)

    @app.on_message()
    async def hang(message: TextMessage, ctx: Context) -> None:
        await asyncio.Event().wait()

    client = await serve(app)
    assert (await client.post("/webhook", json=text_callback("hi"))).status == 200
    await app.dispatcher.wait_idle()  # type: ignore[union-attr]
    [dead] = await app.inbox.dead_letters()
    assert "within 0.2 s" in dead.error


def test_a_timeout_must_be_positive(make_app: MakeApp) -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="positive number of seconds"):

        @app.on_message(timeout=0)
        async def never(message: TextMessage, ctx: Context) -> None: ...


async def first_refusal(url: str) -> float:
    """Seconds until a new callback is refused: answered 503, or its connection refused."""
    began = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for n in range(1000):
            callback = text_callback(f"late {n}", wa_id="31699999999", message_id=f"wamid.l{n}")
            try:
                async with session.post(url + "/webhook", json=callback) as response:
                    if response.status == 503:
                        return time.monotonic() - began
            except aiohttp.ClientConnectionError:
                return time.monotonic() - began
    raise AssertionError("new callbacks were never refused")


@pytest.mark.slow
async def test_sigterm_during_a_hanging_handler_exits_within_the_grace(tmp_path: Path) -> None:
    async with FakeProvider() as provider:
        bot = BotProcess(
            "tests.bots.hang_bot:app",
            {
                "WHIZARD_API_KEY": provider.api_key,
                "WHIZARD_BASE_URL": provider.base_url,
                "WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}",
                "WHIZROUTER_SHUTDOWN_GRACE": "1",
            },
        )
        await bot.start()
        try:
            async with aiohttp.ClientSession() as session:
                hanging = text_callback("hang", wa_id="31600000000")
                async with session.post(bot.url + "/webhook", json=hanging) as response:
                    assert response.status == 200
                await provider.wait_for(
                    lambda c: (
                        c.json is not None and c.json.get("text", {}).get("body") == "started hang"
                    )
                )
                for n in range(5):
                    callback = text_callback(f"n{n}", wa_id=f"3161{n:07d}")
                    async with session.post(bot.url + "/webhook", json=callback) as response:
                        assert response.status == 200
                await provider.wait_for(
                    lambda c: (
                        c.json is not None
                        and c.json.get("text", {}).get("body", "").startswith("done")
                    ),
                    count=5,
                )
            signalled = time.monotonic()
            bot.signal()
            refused_after = await first_refusal(bot.url)
            assert refused_after < 0.1, f"new callbacks still taken {refused_after:.3f} s after"
            assert await bot.wait() == 0
            assert time.monotonic() - signalled < 1 + 1
        finally:
            output = await bot.stop()
        assert "handlers still running after the 1 s grace period" in output, output
