"""The NATS JetStream inbox against a real ``nats-server``: append, dedupe, order, limits,
dead letters and counts.

The behaviour every backend shares is in ``test_inbox_contract.py``; the NATS inbox's parts
have their own files (``test_inbox_nats_<module>.py``: url, connection, partitions).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable

import anyio
import nats
import pytest

from tests.natsinbox import FAST, claim_n, event, eventually, opened
from tests.natsserver import nats_url, unique_stream
from whizrouter.errors import ConfigurationError, InboxFullError
from whizrouter.inbox.base import RawEvent
from whizrouter.inbox.nats import NatsInbox

__all__ = ["nats_url"]  # the fixture, imported so pytest finds it


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
        oldest = await inbox.oldest_waiting()  # the metrics' oldest_event_age_seconds
        assert oldest is not None and before - 1 <= oldest <= time.time() + 1
        await inbox.ack([e.seq for e in claimed])  # returns once JetStream confirmed
        assert (await inbox.stats())["pending"] == inbox.backlog() == 0
        assert await inbox.oldest_waiting() is None


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


async def test_the_send_journal_bucket_keeps_a_journal_until_the_ack(nats_url: str) -> None:
    from whizrouter.inbox.base import JournalEntry

    stream = unique_stream()
    async with opened(nats_url, stream) as inbox:
        await inbox.append([event("491", 1), event("491", 2)])
        acked, dead = await claim_n(inbox, 2)
        for stored in (acked, dead):
            await inbox.journal_record(stored.key, "#1", JournalEntry("h", "wamid." + stored.key))
        nc = await nats.connect(nats_url)
        try:
            kv = await nc.jetstream().key_value(f"{stream}_JOURNAL")
            assert len(await kv.keys()) == 2
            await inbox.ack([acked.seq])
            await inbox.dead(dead.seq, handler="h", attempts=1, error="boom")
            assert len(await kv.keys()) == 1  # the dead letter's journal stays for its replay
            [letter] = await inbox.dead_letters()
            await inbox.drop([letter.seq])
            with pytest.raises(nats.js.errors.NoKeysError):
                await kv.keys()
        finally:
            await nc.close()
