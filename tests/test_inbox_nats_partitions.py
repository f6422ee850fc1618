"""Order per conversation across NATS workers (``whizrouter.inbox.nats.partitions``,
``leases``, ``spared``): sharing partitions, takeover, hand-back, counted runs, killed workers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import zlib
from collections import Counter, defaultdict

import nats
import pytest

from tests.natsinbox import FAST, ROOT, claim_n, event, eventually, opened
from tests.natsserver import nats_url, unique_stream
from whizrouter.inbox.nats import NatsInbox

__all__ = ["nats_url"]  # the fixture, imported so pytest finds it


class Workers:
    """Worker loops that handle claimed events like the dispatcher and check the rules."""

    def __init__(self) -> None:
        self.claims: Counter[str] = Counter()
        self.handled: dict[str, list[str]] = defaultdict(list)
        self.by_worker: Counter[str] = Counter()
        self.holder: dict[str, tuple[str, int]] = {}
        self.violations: list[str] = []
        self.changed = asyncio.Event()

    async def run(self, name: str, inbox: NatsInbox, delay: float = 0.002) -> None:
        """Claim, handle in order with a little work, ack; forever."""
        while True:
            batch = await inbox.claim(8)
            for e in batch:
                self.claims[e.key] += 1
                owner, count = self.holder.get(e.conversation, (name, 0))
                if owner != name:
                    self.violations.append(f"{e.key} to {name} while {owner} holds {count}")
                self.holder[e.conversation] = (name, count + 1)
            for e in batch:
                self.handled[e.conversation].append(e.key)
                self.by_worker[name] += 1
                await asyncio.sleep(delay)
                owner, count = self.holder[e.conversation]
                if count == 1:
                    del self.holder[e.conversation]
                else:
                    self.holder[e.conversation] = (owner, count - 1)
                await inbox.ack([e.seq])
                self.changed.set()

    async def wait_handled(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` events were handled in all."""

        async def enough() -> None:
            while sum(map(len, self.handled.values())) < count:
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            total = sum(map(len, self.handled.values()))
            raise AssertionError(f"{total} of {count} events handled in {timeout} s") from None


async def test_two_workers_share_partitions_and_never_a_conversation(nats_url: str) -> None:
    stream = unique_stream()
    conversations = [f"4915{i:04d}" for i in range(12)]
    appended: dict[str, list[str]] = defaultdict(list)
    workers = Workers()

    async def append_round(n: int, inbox: NatsInbox) -> None:
        batch = [event(c, n) for c in conversations]
        await inbox.append(batch)
        for e in batch:
            appended[e.conversation].append(e.key)

    async with opened(nats_url, stream) as a, opened(nats_url, stream) as b:
        tasks = [asyncio.create_task(workers.run("a", a))]
        try:
            for n in range(6):
                await append_round(n, a)
            await workers.wait_handled(12)
            # b joins while a still holds events: a gives partitions up, b waits for them.
            tasks.append(asyncio.create_task(workers.run("b", b)))

            async def balanced() -> bool:
                return len(a.owned_partitions) == len(b.owned_partitions) == 2

            await eventually(balanced, "the partitions to spread over both workers")
            for n in range(6, 12):
                await append_round(n, b)
            await workers.wait_handled(12 * 12)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert workers.violations == []
    assert set(workers.claims.values()) == {1}
    assert dict(workers.handled) == dict(appended)
    assert workers.by_worker["a"] > 0 and workers.by_worker["b"] > 0
    assert set(a.owned_partitions) | set(b.owned_partitions) == set()  # released on close


async def test_a_partition_given_up_waits_for_what_its_old_owner_still_handles(
    nats_url: str,
) -> None:
    stream = unique_stream()
    by_partition = {zlib.crc32(c.encode()) % 2: c for c in ("491", "492", "493", "494")}
    async with (
        opened(nats_url, stream, partitions=2) as a,
        opened(nats_url, stream, partitions=2) as b,
    ):
        await a.append([event(by_partition[0], 1), event(by_partition[1], 1)])
        held = {e.conversation: e for e in await claim_n(a, 2)}  # a owns both partitions
        await a.append([event(by_partition[0], 2), event(by_partition[1], 2)])
        later = asyncio.create_task(claim_n(b, 1))

        async def split() -> bool:
            return len(a.owned_partitions) == len(b.owned_partitions) == 1

        await eventually(split, "b to take one partition over")
        [moved] = b.owned_partitions
        conversation = by_partition[moved]
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()

            async def b_holds_the_next_one() -> bool:
                info = await js.consumer_info(stream, f"p{moved}")
                return (info.num_pending, info.num_ack_pending) == (0, 2)

            # b has the conversation's next event, but a still handles the one before it.
            await eventually(b_holds_the_next_one, "b to fetch the next event")
            await asyncio.sleep(0.5)  # several of b's fetch rounds
            assert not later.done()
        finally:
            await nc.close()
        await a.ack([held[conversation].seq])
        [moved_event] = await later
        assert moved_event.key == f"m:{conversation}:2"
        # Handed over unstarted (a may have fetched it): not mistaken for a crash's leftover.
        assert not moved_event.maybe_ran
        [kept_event] = await claim_n(a, 1)
        assert kept_event.key == f"m:{by_partition[1 - moved]}:2"


async def test_a_closed_worker_hands_its_events_over_in_order(nats_url: str) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream) as b:
        a = NatsInbox([nats_url], stream=stream, **FAST)
        await a.open()
        await a.append([event("491", n) for n in range(5)])
        taken = await claim_n(a, 5)
        await a.close()  # without settling anything, and without saying what started
        redelivered = await claim_n(b, 5)
        assert [e.key for e in redelivered] == [e.key for e in taken]
        assert [e.seq for e in redelivered] == [e.seq for e in taken]
        # Any of them may have run; none is known to have, so none counts an attempt.
        assert all(e.attempts == 0 and e.maybe_ran for e in redelivered)


async def test_a_counted_run_of_a_possibly_started_event_is_its_attempt(nats_url: str) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream) as b:
        a = NatsInbox([nats_url], stream=stream, **FAST)
        await a.open()
        await a.append([event("491", 0), event("492", 0)])
        await claim_n(a, 2)
        await a.close()  # a crash, as far as the next worker can tell
        first, second = sorted(await claim_n(b, 2), key=lambda e: e.seq)
        assert (first.attempts, first.maybe_ran, second.maybe_ran) == (0, True, True)
        # The dispatcher counts the next run of such an event before it starts it; a failed
        # run is counted as it fails.
        await b.count_run(first.seq)
        await b.record_attempt(second.seq, 2, "boom")
        c = NatsInbox([nats_url], stream=stream, **FAST)
        await c.open()
        try:
            await b.close()
            again = sorted(await claim_n(c, 2), key=lambda e: e.seq)
        finally:
            await c.close()
        assert [(e.attempts, e.maybe_ran) for e in again] == [(1, True), (2, True)]


async def test_a_clean_stop_hands_back_unstarted_events_without_counting_an_attempt(
    nats_url: str,
) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream) as b:
        for _ in range(3):  # through several deploys
            a = NatsInbox([nats_url], stream=stream, **FAST)
            await a.open()
            await a.append([event("491", n) for n in range(6)])  # the repeats are dropped
            _started, unstarted = await claim_n(a, 2)
            # The app's clean stop: one handler ran and was cut off, one never started; the
            # other four were fetched or not, never claimed.
            await a.release([unstarted.seq])
            await a.close()
        redelivered = await claim_n(b, 6)
        assert [e.key for e in redelivered] == [f"m:491:{n}" for n in range(6)]
        assert [e.attempts for e in redelivered] == [3, 0, 0, 0, 0, 0]
        # Every hand-back was a clean one: nothing comes back as possibly started.
        assert not any(e.maybe_ran for e in redelivered)


WORKER = """
import asyncio, sys
from whizrouter.inbox.nats import NatsInbox
from whizrouter.testing import text_callback


async def main() -> None:
    url, stream, count, ack_wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    inbox = NatsInbox([url], stream=stream, partitions=4, ack_wait=ack_wait, lease_ttl=1.0)
    await inbox.open()
    got = []
    while len(got) < count:
        got += await inbox.claim(count - len(got))
    print(" ".join(str(e.seq) for e in got), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_killed_worker_s_events_come_back_before_newer_ones(nats_url: str) -> None:
    stream = unique_stream()
    # ack_wait > lease_ttl: the partition is free before JetStream redelivers the dead
    # worker's events, so only the takeover rule keeps the newer event behind them.
    async with opened(nats_url, stream, ack_wait=2.0) as b:
        await b.append([event("491", n) for n in range(5)])
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, nats_url, stream, "5", "2.0",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 15)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            await child.wait()
        killed = time.monotonic()
        held = sorted(int(s) for s in line.split())
        await b.append([event("491", 5)])
        got = await claim_n(b, 6, timeout=15)
        assert [e.key for e in got] == [f"m:491:{n}" for n in range(6)]
        assert [e.seq for e in got[:5]] == held
        assert [(e.attempts, e.maybe_ran) for e in got] == [(0, True)] * 5 + [(0, False)]
        assert time.monotonic() - killed < 10


async def test_held_events_are_not_redelivered_while_a_slow_handler_runs(nats_url: str) -> None:
    stream = unique_stream()
    async with (
        opened(nats_url, stream, ack_wait=0.5) as a,
        opened(nats_url, stream, ack_wait=0.5) as b,
    ):
        await a.append([event("491", 1)])
        [held] = await claim_n(a, 1)
        other = asyncio.create_task(b.claim(1))
        await a.record_attempt(held.seq, 1, "boom")
        await asyncio.sleep(1.5)  # the slow handler: three ack waits
        assert not other.done()
        other.cancel()
        await a.ack([held.seq])
        nc = await nats.connect(nats_url)
        try:
            consumers = await nc.jetstream().consumers_info(stream)
            assert sum(c.num_redelivered or 0 for c in consumers) == 0
        finally:
            await nc.close()
