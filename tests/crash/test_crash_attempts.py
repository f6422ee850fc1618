"""Attempt counting across real crashes: what counts against the retry budget, and what not.

A crashed process held events in memory that no handler had started; they must run after the
restart, however often it crashes and whatever the retry budget. An event that kills the
process itself must still end up dead instead of looping.
"""

from __future__ import annotations

import functools
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.crash.conftest import MakeBot
from tests.process import BotProcess, sqlite_bot_env
from whizrouter.testing import FakeProvider, RecordedCall, free_port, text_callback

pytestmark = pytest.mark.slow

BOT = "tests.bots.poison_bot:app"


@pytest.fixture
def bots(bot_processes: MakeBot) -> Callable[[dict[str, str], int], BotProcess]:
    """This module's bot, as processes that never outlive the test."""
    return functools.partial(bot_processes, BOT)


async def post(url: str, text: str, message_id: str, wa_id: str) -> None:
    body = text_callback(text, message_id=message_id, wa_id=wa_id)
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        assert response.status == 200


def replies(fake: FakeProvider) -> Counter[tuple[str, str, int]]:
    """(what, message id, attempt) of every reply the bot sent."""
    seen: Counter[tuple[str, str, int]] = Counter()
    for call in fake.sent:
        assert call.json is not None
        what, message_id, attempt = call.json["text"]["body"].split()
        seen[(what, message_id, int(attempt))] += 1
    return seen


async def health(url: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as response:
        report: dict[str, object] = await response.json()
        return report


def started(message_id: str, attempt: int) -> Callable[[RecordedCall], bool]:
    body = f"started {message_id} {attempt}"
    return lambda call: call.json is not None and call.json["text"]["body"] == body


async def test_events_a_crashed_process_only_held_run_after_the_restart(
    tmp_path: Path, bots: Callable[[dict[str, str], int], BotProcess]
) -> None:
    port = free_port()
    async with FakeProvider() as fake:
        # One worker, busy with a slow event: the ten behind it are held in the bot's memory,
        # claimed from the inbox and never started, at each of two crashes.
        env = sqlite_bot_env(
            fake, tmp_path, POISON_BOT_SLOW_SECONDS="60", WHIZROUTER_CONCURRENCY="1"
        )
        held = [f"wamid.held-{n}" for n in range(10)]
        for attempt in (1, 2):
            bot = bots(env, port)
            await bot.start()
            if attempt == 1:
                await post(bot.url + "/webhook", "slow one", "wamid.slow", "15550000001")
                for n, message_id in enumerate(held):
                    await post(bot.url + "/webhook", "hi", message_id, f"155500001{n:02d}")
            await fake.wait_for(started("wamid.slow", attempt), timeout=10)
            bot.signal(signal.SIGKILL)
            await bot.wait()
        bot = bots(env, port)
        await bot.start()
        try:
            await fake.wait_for(lambda c: "handled" in str(c.json), count=10, timeout=20)
            report = await health(bot.url)
        finally:
            output = await bot.stop()
    # The slow event did start twice and was cut short twice: its second run was counted,
    # one more than no retries allow, so it is dead. The held ones had crashed nothing: each
    # ran once, told that it may have run before.
    assert report["dead_lettered"] == 1, output
    assert "event m:wamid.slow" in output and "started 1 time without finishing" in output
    assert replies(fake) == Counter(
        {("started", "wamid.slow", 1): 1, ("started", "wamid.slow", 2): 1}
        | {("handled", message_id, 2): 1 for message_id in held}
    ), output


async def test_an_event_that_kills_the_process_every_time_ends_up_dead(
    tmp_path: Path, bots: Callable[[dict[str, str], int], BotProcess]
) -> None:
    port = free_port()
    async with FakeProvider() as fake:
        env = sqlite_bot_env(fake, tmp_path)
        bot = bots(env, port)
        await bot.start()
        await post(bot.url + "/webhook", "poison", "wamid.poison", "15550000001")
        assert await bot.wait() == -signal.SIGKILL
        # The restart runs it again (that run counted before it starts), and dies again.
        bot = bots(env, port)
        await bot.launch()
        assert await bot.wait() == -signal.SIGKILL
        # With no retries allowed, the counted run is one too many: dead, and the bot stays up.
        bot = bots(env, port)
        await bot.start()
        try:
            await post(bot.url + "/webhook", "hi", "wamid.after", "15550000001")
            await fake.wait_for(lambda c: c.kind == "send", count=1, timeout=10)
            report = await health(bot.url)
        finally:
            output = await bot.stop()
    assert report["dead_lettered"] == 1, output
    assert "wamid.poison" in output and "started 1 time without finishing" in output
    assert replies(fake) == Counter({("handled", "wamid.after", 1): 1})
