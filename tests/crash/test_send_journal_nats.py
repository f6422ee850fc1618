"""The send journal on NATS: a receiver and two workers as real processes, one stream.

The three promises of the sqlite process tests, on the journal bucket beside the stream:
a retried handler replies once, a killed worker's events reply once more at most per kill
(on the worker that takes them over), and a replayed dead letter does not reply again.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.crash.test_sigkill import Provider, handled_counts, wait_until_handled
from tests.natsserver import nats_url, unique_stream
from tests.process import ROOT, BotProcess
from whizrouter.testing import FakeProvider, RecordedCall, text_callback

__all__ = ["nats_url"]  # the fixture, imported so pytest finds it

pytestmark = pytest.mark.slow

BOT = "tests.bots.journal_bot:app"
KILLS = 2
KILL_OFFSET = 0.15


def is_done(message_id: str) -> Callable[[RecordedCall], bool]:
    """Selects the last reply of ``message_id``'s handler."""
    text = f"done {message_id}"
    return lambda call: ((call.json or {}).get("text") or {}).get("body") == text


async def post(url: str, text: str, message_id: str) -> None:
    body = text_callback(
        text, message_id=message_id, wa_id=f"1555{zlib.crc32(message_id.encode()) % 10**7:07d}"
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/webhook", json=body) as response,
    ):
        assert response.status == 200


async def dead_lettered(workers: list[BotProcess]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(500):
            total = 0
            for worker in workers:
                async with session.get(worker.url + "/healthz") as response:
                    total += (await response.json())["dead_lettered"]
            if total:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("no worker dead-lettered the event")


async def replay_all(env: dict[str, str]) -> None:
    replay = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "whizrouter", "dead", "replay", "--all"),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await replay.communicate()
    assert replay.returncode == 0, out.decode()


@pytest.mark.timeout(150)
async def test_on_nats_two_workers_send_no_reply_twice(nats_url: str, tmp_path: Path) -> None:
    flag = tmp_path / "fixed.flag"
    inbox = f"{nats_url}?stream={unique_stream('JOURNAL')}&partitions=4&ack_wait=1&lease_ttl=1"
    async with FakeProvider() as fake:
        env = {
            "WHIZARD_API_KEY": fake.api_key,
            "WHIZARD_BASE_URL": fake.base_url,
            "WHIZROUTER_INBOX": inbox,
            "WHIZROUTER_CONCURRENCY": "8",
            "WHIZROUTER_SHUTDOWN_GRACE": "2",
            "JOURNAL_BOT_FLAG": str(flag),
        }
        receiver = BotProcess(BOT, env, args=("--role", "receiver"))
        workers = [BotProcess(BOT, env, args=("--role", "worker")) for _ in range(2)]
        everyone = [receiver, *workers]
        try:
            await asyncio.gather(*(p.start() for p in everyone))

            # A retried handler: one reply per event, whatever worker runs it.
            for n in range(3):
                await post(receiver.url, "retry", f"wamid.retry{n}")
            for n in range(3):
                await fake.wait_for(is_done(f"wamid.retry{n}"), count=1, timeout=15)

            # A dead letter, replayed once the flag exists: no second reply.
            await post(receiver.url, "flaky", "wamid.flaky")
            await dead_lettered(workers)
            flag.touch()
            await replay_all(receiver.env)
            await fake.wait_for(is_done("wamid.flaky"), count=1, timeout=15)

            # A worker killed under load, then restarted: its events reply once.
            provider = Provider()
            stop = asyncio.Event()
            load = asyncio.create_task(
                provider.stream(receiver.url + "/webhook", stop, senders=1, pause=0.04)
            )
            for _ in range(KILLS):
                await fake.wait_for(
                    lambda c: c.kind == "send", count=len(fake.sent) + 15, timeout=30
                )
                await asyncio.sleep(KILL_OFFSET)  # see test_send_journal_crash.py
                victim = workers[0]
                victim.signal(signal.SIGKILL)
                await victim.wait()
                workers[0] = BotProcess(BOT, env, args=("--role", "worker"))
                everyone.append(workers[0])
                await workers[0].start()
            stop.set()
            await load
            await provider.resend_failed(receiver.url + "/webhook")
            await wait_until_handled(fake, provider.acknowledged)
        finally:
            outputs = await asyncio.gather(*(p.stop() for p in everyone))
    counts = handled_counts(fake)
    for n in range(3):
        assert counts[f"wamid.retry{n}"] == 1
    assert counts["wamid.flaky"] == 1, "\n".join(outputs)
    twice = sorted(mid for mid, n in counts.items() if n > 1)
    assert len(provider.acknowledged) > 20
    assert len(twice) <= KILLS, twice
