"""Exactly-once conversation state under SIGKILL: a real ``whizrouter run`` process counts
each conversation's messages in ``ctx.state`` while it is killed and restarted.

At the end every conversation's counter equals the number of its messages that were answered
200: a kill never loses a committed change (not one less) and a replayed event never applies
its change twice (not one more). Once on sqlite, with three kills; once on NATS, with two
workers and one of them killed.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.crash.test_sigkill import Provider, settled_health
from tests.natsserver import nats_url, unique_stream
from tests.process import BotProcess
from whizrouter.inbox.base import Inbox
from whizrouter.inbox.nats import NatsInbox
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.testing import FakeProvider, free_port

__all__ = ["nats_url"]  # the fixture, imported so pytest finds it

pytestmark = pytest.mark.slow

BOT = "tests.bots.counter_bot:app"
KILLS = 3


def acknowledged_per_conversation(provider: Provider) -> Counter[str]:
    counts: Counter[str] = Counter()
    for message_id in provider.acknowledged:
        body = provider.bodies[message_id]
        counts[body_wa_id(body)] += 1
    return counts


def body_wa_id(body: dict[str, object]) -> str:
    messages = body["messages"]
    assert isinstance(messages, list)
    sender = messages[0]["from"]
    assert isinstance(sender, str)
    return sender


async def counters(inbox: Inbox, conversations: list[str]) -> Counter[str]:
    await inbox.open()
    try:
        found: Counter[str] = Counter()
        for conversation in conversations:
            stored = await inbox.load_state(conversation)
            found[conversation] = 0 if stored is None else int(stored.data.get("count", 0))
        return found
    finally:
        await inbox.close()


@pytest.mark.timeout(120)
async def test_counters_survive_sigkill_exactly_once_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "inbox.db"
    async with FakeProvider() as fake:
        env = {
            "WHIZARD_API_KEY": fake.api_key,
            "WHIZARD_BASE_URL": fake.base_url,
            "WHIZROUTER_INBOX": f"sqlite:///{db}",
            "WHIZROUTER_CONCURRENCY": "8",
            "CRASH_BOT_WORK_SECONDS": "0.005",
        }
        provider = Provider()
        port = free_port()
        for _ in range(KILLS):
            bot = BotProcess(BOT, env, port=port)
            await bot.start()
            await provider.resend_failed(bot.url + "/webhook")
            stop = asyncio.Event()
            load = asyncio.create_task(
                provider.stream(bot.url + "/webhook", stop, senders=4, pause=0.002)
            )
            await fake.wait_for(lambda c: c.kind == "send", count=len(fake.sent) + 150, timeout=30)
            bot.signal(signal.SIGKILL)
            await bot.wait()
            stop.set()
            await load
        bot = BotProcess(BOT, env, port=port)
        await bot.start()
        try:
            await provider.resend_failed(bot.url + "/webhook")
            await settled_health(bot.url)
        finally:
            output = await bot.stop()
    expected = acknowledged_per_conversation(provider)
    assert sum(expected.values()) > 150, output
    found = await counters(SqliteInbox(db), sorted(expected))
    wrong = {c: (found[c], n) for c, n in expected.items() if found[c] != n}
    assert not wrong, f"(counter, answered 200) differ: {wrong}\n{output[-3000:]}"


@pytest.mark.timeout(120)
async def test_counters_survive_a_killed_nats_worker_exactly_once(nats_url: str) -> None:
    stream = unique_stream()
    inbox_url = f"{nats_url}?stream={stream}&partitions=8&ack_wait=2&lease_ttl=1"
    async with FakeProvider() as fake:
        env = {
            "WHIZARD_API_KEY": fake.api_key,
            "WHIZARD_BASE_URL": fake.base_url,
            "WHIZROUTER_INBOX": inbox_url,
            "WHIZROUTER_CONCURRENCY": "8",
            "CRASH_BOT_WORK_SECONDS": "0.005",
        }
        provider = Provider()
        survivor = BotProcess(BOT, env)
        doomed = BotProcess(BOT, env)
        try:
            await asyncio.gather(survivor.start(), doomed.start())
            stop = asyncio.Event()
            load = asyncio.create_task(
                provider.stream(survivor.url + "/webhook", stop, senders=4, pause=0.002)
            )
            await fake.wait_for(lambda c: c.kind == "send", count=300, timeout=30)
            doomed.signal(signal.SIGKILL)
            await doomed.wait()
            await fake.wait_for(lambda c: c.kind == "send", count=len(fake.sent) + 100, timeout=30)
            stop.set()
            await load
            await provider.resend_failed(survivor.url + "/webhook")
            expected = acknowledged_per_conversation(provider)
            # The killed worker's events come back after ack_wait: wait for every counter.
            inbox = NatsInbox.from_url(inbox_url)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while True:
                found = await counters(inbox, sorted(expected))
                if found == expected or loop.time() > deadline:
                    break
                await asyncio.sleep(0.2)
            await settled_health(survivor.url)
            found = await counters(inbox, sorted(expected))
        finally:
            doomed.kill()
            output = await survivor.stop()
    assert sum(expected.values()) > 300, output
    wrong = {c: (found[c], n) for c, n in expected.items() if found[c] != n}
    assert not wrong, f"(counter, answered 200) differ: {wrong}\n{output[-3000:]}"
