"""The send journal across real crashes: a ``whizrouter run`` process on the sqlite inbox.

A handler that replied and was killed before its event was acknowledged runs again after
the restart; with the journal its reply is answered from the journal, not sent again.
A dead letter replayed with ``whizrouter dead replay --all`` does not send its reply again.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.crash.conftest import MakeBot
from tests.crash.test_sigkill import Provider, handled_counts, settled_health, wait_until_handled
from tests.process import ROOT, BotProcess, sqlite_bot_env
from whizrouter.testing import FakeProvider, free_port, text_callback

pytestmark = pytest.mark.slow

BOT = "tests.bots.journal_bot:app"
KILLS = 3
CONCURRENCY = 8
#: Seconds from the reply that triggers a kill to the kill: half a handler's work.
KILL_OFFSET = 0.15


@pytest.fixture
def bots(bot_processes: MakeBot) -> Callable[[dict[str, str], int], BotProcess]:
    """This module's bot, as processes that never outlive the test."""
    return functools.partial(bot_processes, BOT)


def bot_env(fake: FakeProvider, tmp_path: Path, **extra: str) -> dict[str, str]:
    return sqlite_bot_env(fake, tmp_path, WHIZROUTER_CONCURRENCY=str(CONCURRENCY), **extra)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("journal", [True, False], ids=["journal", "no-journal"])
async def test_sigkill_after_a_reply_does_not_send_it_again(
    tmp_path: Path, bots: Callable[[dict[str, str], int], BotProcess], journal: bool
) -> None:
    async with FakeProvider() as fake:
        env = bot_env(fake, tmp_path, JOURNAL_BOT_OFF="0" if journal else "1")
        provider = Provider()
        port = free_port()
        for _ in range(KILLS):
            bot = bots(env, port)
            await bot.start()
            await provider.resend_failed(bot.url + "/webhook")
            stop = asyncio.Event()
            load = asyncio.create_task(
                provider.stream(bot.url + "/webhook", stop, senders=1, pause=0.04)
            )
            # Kill once handlers are busy: each one replied and works 300 ms before its ack.
            await fake.wait_for(lambda c: c.kind == "send", count=len(fake.sent) + 15, timeout=30)
            # Not at the moment a reply arrived, which is inside its send's window (sent, not
            # yet journaled) by construction: a crash lands anywhere in the handlers' work.
            await asyncio.sleep(KILL_OFFSET)
            bot.signal(signal.SIGKILL)
            await bot.wait()
            stop.set()
            await load
        bot = bots(env, port)
        await bot.start()
        try:
            await provider.resend_failed(bot.url + "/webhook")
            await wait_until_handled(fake, provider.acknowledged)
            await settled_health(bot.url)
        finally:
            output = await bot.stop()
    counts = handled_counts(fake)
    twice = sorted(mid for mid, n in counts.items() if n > 1)
    assert provider.acknowledged <= set(counts), output
    if journal:
        # Only a send caught between the provider's answer and the journal's commit.
        assert len(twice) <= KILLS, (twice, output)
    else:
        # Every event in flight at a kill had replied: each one replies again.
        assert len(twice) > KILLS, (twice, output)


async def dead_lettered(url: str, count: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(500):
            async with session.get(url + "/healthz") as response:
                report = await response.json()
            if report["dead_lettered"] >= count:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"no dead letter: {report}")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("journal", [True, False], ids=["journal", "no-journal"])
async def test_a_dead_letter_replayed_after_the_fix_does_not_reply_twice(
    tmp_path: Path, bots: Callable[[dict[str, str], int], BotProcess], journal: bool
) -> None:
    flag = tmp_path / "fixed.flag"
    async with FakeProvider() as fake:
        env = bot_env(
            fake, tmp_path, JOURNAL_BOT_FLAG=str(flag), JOURNAL_BOT_OFF="0" if journal else "1"
        )
        bot = bots(env, free_port())
        await bot.start()
        try:
            body = text_callback("flaky", message_id="wamid.flaky")
            async with (
                aiohttp.ClientSession() as session,
                session.post(bot.url + "/webhook", json=body) as response,
            ):
                assert response.status == 200
            await dead_lettered(bot.url, 1)

            flag.touch()
            replay = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "whizrouter",
                "dead",
                "replay",
                "--all",
                env={**bot.env},
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await replay.communicate()
            assert replay.returncode == 0, out.decode()
            await fake.wait_for(
                lambda c: (c.json or {}).get("text", {}).get("body") == "done wamid.flaky",
                count=1,
                timeout=15,
            )
        finally:
            output = await bot.stop()
    if journal:
        assert handled_counts(fake) == {"wamid.flaky": 1}, output
        assert fake.send_requests == 2  # "handled" once, "done" once
    else:
        assert handled_counts(fake) == {"wamid.flaky": 2}, output
