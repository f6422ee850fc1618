"""The NATS JetStream inbox against a real ``nats-server``: dedupe, order, workers, dead letters."""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import AiohttpClient
from tests.natsserver import nats_url, unique_stream
from whizrouter import WhizRouter
from whizrouter.errors import ConfigurationError, InboxError, InboxFullError
from whizrouter.inbox.base import EventKind, Inbox, RawEvent, StoredEvent
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.inbox.nats import NatsInbox
from whizrouter.testing import NatsServer, text_callback

__all__ = ["nats_url"]  # the fixture, imported so pytest finds it

ROOT = Path(__file__).resolve().parent.parent
#: Short timers so takeovers happen within a second or two.
FAST: dict[str, Any] = {"partitions": 4, "ack_wait": 1.0, "lease_ttl": 1.0}


@asynccontextmanager
async def opened(url: str, stream: str, **options: Any) -> AsyncIterator[NatsInbox]:
    """An open ``NatsInbox`` on ``stream``, closed afterwards."""
    inbox = NatsInbox([url], stream=stream, **{**FAST, **options})
    await inbox.open()
    try:
        yield inbox
    finally:
        await inbox.close()


def event(conversation: str, n: int, kind: EventKind = "message") -> RawEvent:
    """The ``n``-th event of a conversation."""
    return RawEvent(
        kind=kind,
        key=f"m:{conversation}:{n}",
        conversation=conversation,
        body=b'{"n": %d}' % n,
    )


async def claim_n(inbox: NatsInbox, count: int, timeout: float = 10.0) -> list[StoredEvent]:
    """Claim until ``count`` events arrived; fail clearly on timeout."""
    got: list[StoredEvent] = []

    async def collect() -> None:
        while len(got) < count:
            got.extend(await inbox.claim(count - len(got)))

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise AssertionError(f"claimed {len(got)} of {count} events in {timeout} s") from None
    return got


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    """Wait until ``check`` holds, polling the server; fail clearly on timeout."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_from_url_reads_options_and_keeps_credentials_out_of_the_description() -> None:
    inbox = inbox_from_url(
        "nats://alice:s3cret@h1:4222,h2:4223?stream=BOT&partitions=8&name=bot&creds=/x.creds",
        max_backlog=10,
    )
    assert isinstance(inbox, NatsInbox)
    assert isinstance(inbox, Inbox)
    assert inbox.durable is True
    assert inbox.description == "nats://h1:4222,nats://h2:4223?stream=BOT"
    assert "s3cret" not in inbox.description
    with pytest.raises(ConfigurationError, match="unknown NATS option 'partition'"):
        NatsInbox.from_url("nats://h1?partition=3")
    with pytest.raises(ConfigurationError, match="partitions='many'"):
        NatsInbox.from_url("nats://h1?partitions=many")
    with pytest.raises(ConfigurationError, match="stream="):
        NatsInbox.from_url("nats://h1?stream=a.b")


@pytest.mark.parametrize(
    "option",
    ["ack_wait=nan", "ack_wait=inf", "lease_ttl=1e308", "connect_timeout=-1", "duplicate_window=0"],
)
def test_a_duration_that_is_not_a_sane_number_of_seconds_is_refused_by_name(option: str) -> None:
    # NaN passed a "> 0" check: such a worker took partitions and never handled them.
    name, _, value = option.partition("=")
    with pytest.raises(ConfigurationError, match=f"{name}='{value}' must be a number of seconds"):
        NatsInbox.from_url(f"nats://h1?{option}")


@pytest.mark.parametrize(
    "option",
    [
        {"ack_wait": math.nan},
        {"lease_ttl": 1e308},
        {"duplicate_window": 0.0},
        {"dedupe_seconds": -1.0},
        {"dedupe_seconds": math.inf},
    ],
)
def test_an_inbox_built_in_code_checks_its_durations_as_the_url_does(
    option: dict[str, Any],
) -> None:
    ((name, value),) = option.items()
    with pytest.raises(ConfigurationError, match=re.escape(f"{name}={value!r} must be")):
        NatsInbox(["nats://h1:4222"], **option)


async def test_a_connection_closed_for_good_stops_the_app(tmp_path: Path) -> None:
    # With reconnect=false, the connection never comes back: the app fails (whizrouter run
    # exits for its supervisor to restart it) instead of answering 503 for ever.
    server = NatsServer(store_dir=tmp_path / "nats")
    url = server.start()
    try:
        app = WhizRouter(inbox=f"{url}?stream={unique_stream()}&reconnect=false", role="receiver")
        async with app:
            server.stop()
            failure = await asyncio.wait_for(app.wait_failed(), timeout=10)
            assert "closed for good" in str(failure) and "restart the process" in str(failure)
            assert app.failure is failure
    finally:
        server.stop()


async def test_credentials_in_the_url_reach_the_server() -> None:
    server = NatsServer(args=("--user", "alice", "--pass", "s3cret"))
    url = server.start()
    try:
        authed = url.replace("nats://", "nats://alice:s3cret@")
        inbox = NatsInbox.from_url(f"{authed}?stream={unique_stream()}&name=test")
        await inbox.open()
        try:
            assert await inbox.append([event("491", 1)]) == 1
            assert "s3cret" not in inbox.description and "alice" not in inbox.description
        finally:
            await inbox.close()
        wrong = NatsInbox.from_url(
            url.replace("nats://", "nats://alice:wrong@") + "?reconnect_time_wait=0.05"
        )
        with pytest.raises(InboxError, match="cannot open") as refused:
            await asyncio.wait_for(wrong.open(), 10)
        assert "wrong" not in str(refused.value)
    finally:
        server.stop()


async def test_open_fails_fast_when_no_server_listens() -> None:
    inbox = NatsInbox.from_url("nats://127.0.0.1:1?reconnect_time_wait=0.05&connect_timeout=1")
    with pytest.raises(InboxError, match="cannot open the NATS inbox"):
        await asyncio.wait_for(inbox.open(), 10)


async def test_append_claim_ack(nats_url: str) -> None:
    async with opened(nats_url, unique_stream()) as inbox:
        before = time.time()
        events = [event("491", 1), event("491", 2, "status"), event("492", 1)]
        assert await inbox.append(events) == 3
        claimed = sorted(await claim_n(inbox, 3), key=lambda e: e.key)
        assert [(e.kind, e.key, e.conversation, e.body) for e in claimed] == [
            (e.kind, e.key, e.conversation, e.body) for e in events
        ]
        assert claimed[0].seq < claimed[1].seq  # one conversation: stored in order
        assert all(e.attempts == 0 and e.received_at >= before - 1 for e in claimed)
        assert (await inbox.stats())["pending"] == inbox.backlog() == 3
        await inbox.ack([e.seq for e in claimed])  # returns once JetStream confirmed
        assert (await inbox.stats())["pending"] == inbox.backlog() == 0


async def test_backlog_covers_what_other_processes_append_and_settle(nats_url: str) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream) as receiver, opened(nats_url, stream) as worker:
        await worker.append([event("491", n) for n in range(3)])

        def counted(n: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return receiver.backlog() == n

            return check

        await eventually(counted(3), "the receiver to count the worker's appends")
        await worker.ack([e.seq for e in await claim_n(worker, 3)])
        await eventually(counted(0), "the receiver to count the worker's acks")


async def test_backlog_stays_close_while_every_process_keeps_changing_it(nats_url: str) -> None:
    # A receiver appending and a worker settling without pause: each must still take the
    # server's count every second, not add up its own changes alone (it drifted by hundreds).
    stream = unique_stream()
    async with opened(nats_url, stream) as receiver, opened(nats_url, stream) as worker:
        stop = asyncio.Event()

        async def keep_settling() -> None:
            while not stop.is_set():
                with anyio.move_on_after(0.05):
                    batch = await worker.claim(50)
                    await worker.ack([e.seq for e in batch])

        settling = asyncio.create_task(keep_settling())
        for n in range(300):  # about 3 s of appends, about 100 a second
            await receiver.append([event("492", n)])
            await asyncio.sleep(0.01)
        stop.set()
        await settling
        info = await receiver._js.stream_info(stream)
        actual = info.state.messages
        # Within about a second of the other process' changes (100 appends a second here).
        assert abs(receiver.backlog() - actual) <= 150, (receiver.backlog(), actual)
        assert abs(worker.backlog() - actual) <= 150, (worker.backlog(), actual)


async def test_odd_header_values_survive(nats_url: str) -> None:
    async with opened(nats_url, unique_stream()) as inbox:
        odd = RawEvent(kind="raw", key="r:ab cd\r\n%20é", conversation="", body=b"\x00\xff")
        assert await inbox.append([odd]) == 1
        [got] = await claim_n(inbox, 1)
        assert (got.kind, got.key, got.conversation, got.body) == (
            "raw", odd.key, "", odd.body,
        )  # fmt: skip


async def test_duplicates_are_dropped_in_a_batch_across_appends_and_instances(
    nats_url: str,
) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream) as first:
        assert await first.append([event("491", 1), event("491", 1)]) == 1
        assert await first.append([event("491", 1), event("491", 2)]) == 1
    async with opened(nats_url, stream) as second:
        assert await second.append([event("491", 1), event("491", 2)]) == 0
        stats = await second.stats()
        assert (stats["pending"], stats["seen"]) == (2, 2)


async def test_dedupe_outlives_the_jetstream_window(nats_url: str) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream, duplicate_window=0.2) as inbox:
        assert await inbox.append([event("491", 1)]) == 1
        # Prove JetStream itself forgot the key: a probe published right after it, on a
        # partition the event does not use, stops being called a duplicate.
        probe = f"{stream}.events.{(zlib.crc32(b'491') + 1) % FAST['partitions']}"
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            await js.publish(probe, b"", headers={"Nats-Msg-Id": "probe"})

            async def forgotten() -> bool:
                ack = await js.publish(probe, b"", headers={"Nats-Msg-Id": "probe"})
                return not ack.duplicate

            await eventually(forgotten, "JetStream's duplicate window to pass")
            await js.purge_stream(stream, subject=probe)
        finally:
            await nc.close()
        assert await inbox.append([event("491", 1)]) == 0
        assert (await inbox.stats())["pending"] == 1


async def test_events_of_a_conversation_come_out_in_order(nats_url: str) -> None:
    async with opened(nats_url, unique_stream()) as inbox:
        appended: dict[str, list[str]] = defaultdict(list)
        for n in range(10):
            batch = [event(conversation, n) for conversation in ("491", "492", "493")]
            await inbox.append(batch)
            for e in batch:
                appended[e.conversation].append(e.key)
        claimed = await claim_n(inbox, 30)
        seen: dict[str, list[str]] = defaultdict(list)
        for stored in claimed:
            seen[stored.conversation].append(stored.key)
        assert seen == appended
        for conversation in appended:
            seqs = [e.seq for e in claimed if e.conversation == conversation]
            assert seqs == sorted(seqs)


async def test_a_receiver_that_never_claims_never_consumes(nats_url: str) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream) as receiver:
        await receiver.append([event("491", 1)])
        assert receiver.owned_partitions == ()
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            assert (await js.stream_info(stream)).state.consumer_count == 0
            assert (await js.stream_info(f"KV_{stream}_LEASES")).state.messages == 0
        finally:
            await nc.close()


async def test_backlog_and_stream_limits_refuse_appends(nats_url: str) -> None:
    async with opened(nats_url, unique_stream(), max_backlog=2) as inbox:
        assert await inbox.append([event("491", 1), event("491", 2)]) == 2
        with pytest.raises(InboxFullError):
            await inbox.append([event("491", 3)])
    async with opened(nats_url, unique_stream(), max_msgs=1) as inbox:
        assert await inbox.append([event("491", 1)]) == 1
        with pytest.raises(InboxFullError, match="limits"):
            await inbox.append([event("491", 2)])


async def test_partition_count_cannot_change_under_a_stream(nats_url: str) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream):
        pass
    inbox = NatsInbox([nats_url], stream=stream, partitions=8)
    with pytest.raises(ConfigurationError, match="partitions=4"):
        await inbox.open()


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


async def test_dead_letters_are_listed_replayed_and_dropped_from_another_process(
    nats_url: str,
) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream) as worker, opened(nats_url, stream) as cli:
        await worker.append([event("491", 1), event("492", 1), event("493", 1)])
        first, second, third = sorted(await claim_n(worker, 3), key=lambda e: e.seq)
        await worker.dead(first.seq, handler="bot.echo", attempts=5, error="Boom\nTraceback ...")
        await worker.dead(second.seq, handler="bot.other", attempts=6, error="x" * 10)
        await worker.ack([third.seq])

        letters = await cli.dead_letters()
        assert [(d.seq, d.key, d.conversation, d.kind) for d in letters] == [
            (first.seq, first.key, "491", "message"),
            (second.seq, second.key, "492", "message"),
        ]
        assert (letters[0].handler, letters[0].attempts, letters[0].error) == (
            "bot.echo", 5, "Boom\nTraceback ...",
        )  # fmt: skip
        assert letters[0].body == first.body and letters[0].died_at > 0
        assert await cli.dead_letters(limit=1) == letters[:1]
        assert (await cli.stats())["dead"] == 2

        assert await cli.replay([first.seq, 12345]) == 1
        assert await cli.drop([second.seq, 12345]) == 1
        assert await cli.dead_letters() == []
        [again] = await claim_n(worker, 1)
        assert (again.key, again.body, again.attempts) == (first.key, first.body, 0)
        assert again.seq > third.seq
        await worker.ack([again.seq])
        stats = await cli.stats()
        assert (stats["dead"], stats["seen"]) == (0, 3)


async def test_replay_all_and_stats(nats_url: str) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream) as inbox:
        await inbox.append([event("491", n) for n in range(3)])
        for e in await claim_n(inbox, 3):
            await inbox.dead(e.seq, handler="h", attempts=1, error="e")
        assert await inbox.replay() == 3
        assert [e.key for e in await claim_n(inbox, 3)] == [f"m:491:{n}" for n in range(3)]
        assert await inbox.stats() == {"pending": 3, "dead": 0, "seen": 3}


async def test_a_receiver_refuses_at_once_and_reports_unavailable_while_nats_is_down(
    tmp_path: Path, aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    server = NatsServer(store_dir=tmp_path / "nats")
    url = server.start()
    port = int(url.rpartition(":")[2])
    stream = unique_stream()
    try:
        app = WhizRouter(inbox=f"{url}?stream={stream}&reconnect_time_wait=0.1", role="receiver")
        client: TestClient[web.Request, web.Application] = await aiohttp_client(app.make_web_app())

        async def health_is(status: int) -> bool:
            return (await client.get("/healthz")).status == status

        first = await client.post("/webhook", json=text_callback("before", message_id="w1"))
        assert first.status == 200

        server.stop()
        await eventually(lambda: health_is(503), "/healthz to report the lost connection")
        report = await (await client.get("/healthz")).json()
        assert (report["status"], report["connected"]) == ("unavailable", False)
        started = time.monotonic()
        for n in range(3):
            refused = await client.post(
                "/webhook", json=text_callback("during", message_id=f"w2-{n}")
            )
            assert refused.status == 503 and refused.headers["Retry-After"] == "5"
        assert time.monotonic() - started < 2  # refused at once, not after a publish timeout
        logged = [r for r in caplog.records if "could not store a callback" in r.getMessage()]
        assert len(logged) == 1  # one line for the outage, not one per callback
        assert "disconnected" in logged[0].getMessage() and logged[0].exc_info is None
        failed = [r for r in caplog.records if "Connect call failed" in r.getMessage()]
        assert len(failed) <= 1  # reconnect attempts, ten a second, are not logged one by one

        server.start(port=port)
        await eventually(lambda: health_is(200), "/healthz to recover", timeout=15)
        # The provider resends what got 503; everything answered 200 is in the stream.
        again = await client.post("/webhook", json=text_callback("during", message_id="w2-0"))
        assert again.status == 200
        async with opened(url, stream, partitions=16) as worker:
            got = await claim_n(worker, 2)
        assert [e.key for e in got] == ["m:w1", "m:w2-0"]
    finally:
        server.stop()


async def test_tls_url_refuses_a_server_without_tls() -> None:
    server = NatsServer(args=("--user", "alice", "--pass", "s3cret"))
    url = server.start()
    try:
        plain = url.replace("nats://", "tls://alice:s3cret@")
        inbox = NatsInbox.from_url(f"{plain}?stream={unique_stream()}")
        with pytest.raises(ConfigurationError, match="does not use it") as refused:
            await asyncio.wait_for(inbox.open(), 10)
        assert "s3cret" not in str(refused.value)
        assert "tls://" in str(refused.value) and "nats://" in str(refused.value)
    finally:
        server.stop()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("handshake_first", [False, True])
async def test_tls_url_works_with_a_tls_server(tmp_path: Path, handshake_first: bool) -> None:
    cert, key = self_signed_certificate(tmp_path)
    config = tmp_path / "tls.conf"
    config.write_text(
        f'tls {{ cert_file: "{cert}", key_file: "{key}"'
        f"{', handshake_first: true' if handshake_first else ''} }}\n"
    )
    server = NatsServer(args=("-c", str(config)))
    url = server.start().replace("nats://", "tls://")
    options = f"tls_ca={cert}" + ("&tls_handshake_first=true" if handshake_first else "")
    inbox = NatsInbox.from_url(f"{url}?stream={unique_stream()}&{options}")
    try:
        await asyncio.wait_for(inbox.open(), 10)
        assert await inbox.append([event("491", 1)]) == 1
        assert (await inbox.stats())["pending"] == 1
    finally:
        await inbox.close()
        server.stop()
