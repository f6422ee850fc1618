"""One contract suite, run against every inbox backend.

To cover a new backend, write an ``InboxFactory`` for it and add one line to ``BACKENDS``.
A factory builds an unopened inbox; it may ask ``request`` for fixtures (a server URL,
``tmp_path``), and must honour ``max_backlog`` and ``dedupe_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import anyio
import orjson
import pytest
from anyio.abc import TaskStatus

from tests.natsserver import nats_url, unique_stream
from whizrouter.defaults import DEFAULT_DEDUPE_SECONDS, DEFAULT_MAX_BACKLOG, DEFAULT_STATE_TTL
from whizrouter.errors import InboxFullError
from whizrouter.inbox.base import (
    DeadLetter,
    EventKind,
    Inbox,
    JournalEntry,
    RawEvent,
    StoredEvent,
)
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.inbox.nats import NatsInbox
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.inbox.stored_state import NOT_CACHED, StateWrite, StoredState

__all__ = ["nats_url"]  # the fixture make_nats asks for, imported so pytest finds it

InboxFactory = Callable[[pytest.FixtureRequest, int, float], Awaitable[Inbox]]


async def make_memory(
    request: pytest.FixtureRequest, max_backlog: int, dedupe_seconds: float
) -> Inbox:
    return MemoryInbox(max_backlog=max_backlog, dedupe_seconds=dedupe_seconds)


async def make_sqlite(
    request: pytest.FixtureRequest, max_backlog: int, dedupe_seconds: float
) -> Inbox:
    tmp_path = request.getfixturevalue("tmp_path")
    return SqliteInbox(
        tmp_path / "inbox.db",
        max_backlog=max_backlog,
        dedupe_seconds=dedupe_seconds,
        poll_interval=0.05,
    )


async def make_nats(
    request: pytest.FixtureRequest, max_backlog: int, dedupe_seconds: float
) -> Inbox:
    # One partition: this suite also checks the order across conversations, which only a
    # single partition keeps; tests/test_inbox_nats.py covers partitions and workers.
    return NatsInbox(
        [request.getfixturevalue("nats_url")],
        stream=unique_stream(),
        partitions=1,
        ack_wait=1.0,
        lease_ttl=1.0,
        max_backlog=max_backlog,
        dedupe_seconds=dedupe_seconds,
    )


BACKENDS: dict[str, InboxFactory] = {
    "memory": make_memory,
    "sqlite": make_sqlite,
    "nats": make_nats,
}


class MakeInbox(Protocol):
    async def __call__(
        self, *, max_backlog: int = ..., dedupe_seconds: float = ..., state_ttl: float = ...
    ) -> Inbox: ...


@pytest.fixture(params=list(BACKENDS))
async def make_inbox(request: pytest.FixtureRequest) -> AsyncIterator[MakeInbox]:
    """Build and open inboxes of one backend; close them after the test."""
    factory = BACKENDS[request.param]
    opened: list[Inbox] = []

    async def make(
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
        state_ttl: float = DEFAULT_STATE_TTL,
    ) -> Inbox:
        inbox = await factory(request, max_backlog, dedupe_seconds)
        inbox.state_ttl = state_ttl
        await inbox.open()
        opened.append(inbox)
        return inbox

    yield make
    for inbox in reversed(opened):
        await inbox.close()


@pytest.fixture
async def inbox(make_inbox: MakeInbox) -> Inbox:
    return await make_inbox()


def event(n: int, conversation: str = "491511111", kind: EventKind = "message") -> RawEvent:
    prefix = {"message": "m", "status": "s", "raw": "r"}[kind]
    body = orjson.dumps({"n": n, "kind": kind})
    return RawEvent(kind=kind, key=f"{prefix}:{n}", conversation=conversation, body=body)


async def claim_n(inbox: Inbox, count: int, *, limit: int = 100) -> list[StoredEvent]:
    """Claim until ``count`` events came out (a backend may hand out smaller batches)."""
    claimed: list[StoredEvent] = []
    with anyio.fail_after(5):
        while len(claimed) < count:
            batch = await inbox.claim(limit)
            assert 0 < len(batch) <= limit
            claimed.extend(batch)
    assert len(claimed) == count
    return claimed


async def claim_nothing(inbox: Inbox, within: float = 0.12) -> None:
    """Assert that ``claim`` hands out nothing for a while."""
    with anyio.move_on_after(within):
        batch = await inbox.claim(100)
        pytest.fail(f"claim handed out {batch}")


def shape(events: list[StoredEvent]) -> list[tuple[str, str, str, bytes]]:
    return [(e.kind, e.key, e.conversation, e.body) for e in events]


def raw_shape(events: list[RawEvent]) -> list[tuple[str, str, str, bytes]]:
    return [(e.kind, e.key, e.conversation, e.body) for e in events]


async def test_claim_returns_appended_events_in_order_with_their_fields(inbox: Inbox) -> None:
    events = [event(1), event(2, "4917", kind="status"), event(3, "raw:ab", kind="raw")]
    before = time.time()
    assert await inbox.append(events) == 3
    assert inbox.backlog() == 3

    claimed = await claim_n(inbox, 3)

    assert shape(claimed) == raw_shape(events)
    seqs = [e.seq for e in claimed]
    assert seqs == sorted(set(seqs))
    assert all(e.attempts == 0 for e in claimed)
    assert all(before - 1 <= e.received_at <= time.time() + 1 for e in claimed)


async def test_empty_append_stores_nothing(inbox: Inbox) -> None:
    assert await inbox.append([]) == 0
    assert inbox.backlog() == 0
    assert (await inbox.stats())["pending"] == 0


async def test_duplicates_within_one_append_are_dropped(inbox: Inbox) -> None:
    first = event(1)
    again = RawEvent(kind="message", key="m:1", conversation=first.conversation, body=b"{}")

    assert await inbox.append([first, again, event(2), first]) == 2

    assert shape(await claim_n(inbox, 2)) == raw_shape([first, event(2)])
    await claim_nothing(inbox)


async def test_duplicates_across_appends_are_dropped_even_after_settling(inbox: Inbox) -> None:
    assert await inbox.append([event(1)]) == 1
    assert await inbox.append([event(1), event(2)]) == 1
    claimed = await claim_n(inbox, 2)
    await inbox.ack([e.seq for e in claimed])

    assert await inbox.append([event(1)]) == 0
    assert await inbox.append([event(2), event(3)]) == 1
    assert [e.key for e in await claim_n(inbox, 1)] == ["m:3"]


async def test_concurrent_redeliveries_store_each_key_once(inbox: Inbox) -> None:
    results: list[int] = []

    async def deliver(n: int) -> None:
        results.append(await inbox.append([event(n % 10)]))

    async with anyio.create_task_group() as tg:
        for n in range(40):
            tg.start_soon(deliver, n)

    assert sum(results) == 10
    assert sorted(e.key for e in await claim_n(inbox, 10)) == sorted(f"m:{n}" for n in range(10))


async def test_each_conversation_comes_out_in_arrival_order(inbox: Inbox) -> None:
    appended: list[RawEvent] = []
    for n in range(0, 30, 3):
        batch = [event(n + i, conversation=f"c{(n + i) % 4}") for i in range(3)]
        assert await inbox.append(batch) == 3
        appended.extend(batch)

    claimed = await claim_n(inbox, 30, limit=4)

    for conversation in {e.conversation for e in appended}:
        assert [e.key for e in claimed if e.conversation == conversation] == [
            e.key for e in appended if e.conversation == conversation
        ]
    assert [e.seq for e in claimed] == sorted(e.seq for e in claimed)


async def test_claim_respects_its_limit(inbox: Inbox) -> None:
    await inbox.append([event(n) for n in range(5)])

    first = await inbox.claim(2)
    rest = await claim_n(inbox, 5 - len(first))

    assert 1 <= len(first) <= 2
    assert [e.key for e in first + rest] == [f"m:{n}" for n in range(5)]


async def test_claim_waits_until_an_event_is_appended(inbox: Inbox) -> None:
    claimed: list[StoredEvent] = []

    async def claimer(*, task_status: TaskStatus[None]) -> None:
        task_status.started()
        claimed.extend(await inbox.claim(10))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(claimer)
            await anyio.wait_all_tasks_blocked()
            assert claimed == []
            await inbox.append([event(1)])

    assert [e.key for e in claimed] == ["m:1"]


async def test_claim_hands_each_event_out_once(inbox: Inbox) -> None:
    await inbox.append([event(1), event(2)])
    await claim_n(inbox, 2)

    await claim_nothing(inbox)
    assert inbox.backlog() == 2  # claimed is not settled


async def test_concurrent_claims_never_share_an_event(inbox: Inbox) -> None:
    await inbox.append([event(n) for n in range(6)])
    claimed: list[StoredEvent] = []

    async def claimer() -> None:
        claimed.extend(await inbox.claim(2))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(claimer)

    keys = [e.key for e in claimed]
    assert len(keys) == len(set(keys)) >= 3


async def test_ack_settles_events(inbox: Inbox) -> None:
    await inbox.append([event(n) for n in range(3)])
    claimed = await claim_n(inbox, 3)

    await inbox.ack([claimed[0].seq, claimed[2].seq])
    await inbox.ack([])

    assert inbox.backlog() == 1
    assert (await inbox.stats())["pending"] == 1
    await claim_nothing(inbox)


async def test_dead_letters_keep_handler_attempts_and_error(inbox: Inbox) -> None:
    await inbox.append([event(1), event(2)])
    doomed, other = await claim_n(inbox, 2)

    await inbox.record_attempt(doomed.seq, 1, "ValueError: first")
    await inbox.record_attempt(doomed.seq, 2, "ValueError: second")
    before = time.time()
    await inbox.dead(doomed.seq, handler="bot.handlers:echo", attempts=3, error="ValueError: last")

    [letter] = await inbox.dead_letters()
    assert letter == DeadLetter(
        seq=doomed.seq,
        kind="message",
        key="m:1",
        conversation=doomed.conversation,
        body=doomed.body,
        handler="bot.handlers:echo",
        attempts=3,
        error="ValueError: last",
        died_at=letter.died_at,
    )
    assert before - 1 <= letter.died_at <= time.time() + 1
    assert inbox.backlog() == 1
    assert await inbox.stats() == {"pending": 1, "dead": 1, "seen": 2}
    await inbox.ack([other.seq])
    assert inbox.backlog() == 0


async def test_dead_letters_come_oldest_first_up_to_the_limit(inbox: Inbox) -> None:
    await inbox.append([event(n) for n in range(4)])
    for stored in await claim_n(inbox, 4):
        await inbox.dead(stored.seq, handler="h", attempts=5, error="boom")

    assert [d.key for d in await inbox.dead_letters()] == [f"m:{n}" for n in range(4)]
    assert [d.key for d in await inbox.dead_letters(limit=2)] == ["m:0", "m:1"]


async def test_replay_hands_a_dead_letter_out_again_with_fresh_attempts(inbox: Inbox) -> None:
    await inbox.append([event(1)])
    [stored] = await claim_n(inbox, 1)
    await inbox.dead(stored.seq, handler="h", attempts=5, error="boom")

    assert await inbox.replay() == 1

    assert await inbox.dead_letters() == []
    assert inbox.backlog() == 1
    [again] = await claim_n(inbox, 1)
    assert shape([again]) == shape([stored])
    assert again.attempts == 0
    assert again.seq > stored.seq
    # The key is still remembered: a redelivery of the replayed event is dropped.
    assert await inbox.append([event(1)]) == 0
    assert (await inbox.stats())["seen"] == 1


async def test_replay_by_seq_leaves_the_other_dead_letters(inbox: Inbox) -> None:
    await inbox.append([event(1), event(2)])
    first, second = await claim_n(inbox, 2)
    for stored in (first, second):
        await inbox.dead(stored.seq, handler="h", attempts=1, error="boom")

    assert await inbox.replay([second.seq]) == 1
    assert await inbox.replay([second.seq, 987_654]) == 0
    assert await inbox.replay([]) == 0

    assert [d.seq for d in await inbox.dead_letters()] == [first.seq]
    assert [e.key for e in await claim_n(inbox, 1)] == ["m:2"]


async def test_drop_deletes_dead_letters_only(inbox: Inbox) -> None:
    await inbox.append([event(1), event(2), event(3)])
    first, second, pending = await claim_n(inbox, 3)
    await inbox.dead(first.seq, handler="h", attempts=1, error="boom")
    await inbox.dead(second.seq, handler="h", attempts=1, error="boom")

    assert await inbox.drop([first.seq, pending.seq]) == 1
    assert await inbox.drop([first.seq]) == 0
    assert await inbox.drop([]) == 0

    assert [d.seq for d in await inbox.dead_letters()] == [second.seq]
    assert await inbox.stats() == {"pending": 1, "dead": 1, "seen": 3}


async def test_the_send_journal_keeps_each_slot_s_latest_entry_until_the_ack(
    inbox: Inbox,
) -> None:
    await inbox.append([event(1), event(2)])
    first, second = await claim_n(inbox, 2)
    assert await inbox.journal_entries(first.key) == {}

    await inbox.journal_record(first.key, "#1", JournalEntry("h1", "wamid.1"))
    await inbox.journal_record(first.key, "k:total", JournalEntry("h2", "wamid.2"))
    await inbox.journal_record(first.key, "#1", JournalEntry("h1b", "wamid.3"))

    assert await inbox.journal_entries(first.key) == {
        "#1": JournalEntry("h1b", "wamid.3"),
        "k:total": JournalEntry("h2", "wamid.2"),
    }
    assert await inbox.journal_entries(second.key) == {}
    await inbox.ack([first.seq, second.seq])
    assert await inbox.journal_entries(first.key) == {}
    assert inbox.backlog() == 0


async def test_a_dead_letter_keeps_its_send_journal_for_its_replay(inbox: Inbox) -> None:
    await inbox.append([event(1)])
    [stored] = await claim_n(inbox, 1)
    await inbox.journal_record(stored.key, "#1", JournalEntry("h1", "wamid.1"))
    await inbox.dead(stored.seq, handler="h", attempts=3, error="boom")

    assert await inbox.replay() == 1
    [again] = await claim_n(inbox, 1)

    assert await inbox.journal_entries(again.key) == {"#1": JournalEntry("h1", "wamid.1")}
    await inbox.ack([again.seq])
    assert await inbox.journal_entries(again.key) == {}


async def test_drop_deletes_a_dead_letter_s_send_journal(inbox: Inbox) -> None:
    await inbox.append([event(1), event(2)])
    dropped, kept = await claim_n(inbox, 2)
    for stored in (dropped, kept):
        await inbox.journal_record(stored.key, "#1", JournalEntry("h", f"wamid.{stored.key}"))
        await inbox.dead(stored.seq, handler="h", attempts=3, error="boom")

    assert await inbox.drop([dropped.seq]) == 1
    assert await inbox.replay() == 1
    [again] = await claim_n(inbox, 1)

    assert again.key == kept.key
    assert await inbox.journal_entries(kept.key) == {"#1": JournalEntry("h", "wamid.m:2")}
    assert await inbox.journal_entries(dropped.key) == {}


async def test_stats_count_each_state(inbox: Inbox) -> None:
    await inbox.append([event(n) for n in range(4)] + [event(0)])
    done, doomed, _, _ = await claim_n(inbox, 4)
    await inbox.ack([done.seq])
    await inbox.dead(doomed.seq, handler="h", attempts=1, error="boom")

    assert await inbox.stats() == {"pending": 2, "dead": 1, "seen": 4}


async def test_append_past_max_backlog_is_refused_and_stores_nothing(
    make_inbox: MakeInbox,
) -> None:
    inbox = await make_inbox(max_backlog=3)
    assert await inbox.append([event(1), event(2)]) == 2

    with pytest.raises(InboxFullError) as refused:
        await inbox.append([event(3), event(4)])

    assert refused.value.retry_after > 0
    assert inbox.backlog() == 2
    assert await inbox.stats() == {"pending": 2, "dead": 0, "seen": 2}
    assert await inbox.append([event(3)]) == 1  # up to the bound is fine
    await inbox.ack([e.seq for e in await claim_n(inbox, 3)])
    # Nothing of the refused append was remembered: the provider's retry is stored.
    assert await inbox.append([event(4)]) == 1


async def test_an_empty_inbox_takes_a_callback_larger_than_max_backlog(
    make_inbox: MakeInbox,
) -> None:
    # Refusing it would refuse it forever: the provider resends the same callback.
    inbox = await make_inbox(max_backlog=3)
    assert await inbox.append([event(n) for n in range(5)]) == 5
    assert inbox.backlog() == 5
    with pytest.raises(InboxFullError):
        await inbox.append([event(5)])
    await inbox.ack([e.seq for e in await claim_n(inbox, 5)])
    assert await inbox.append([event(5)]) == 1


async def test_a_key_is_forgotten_after_the_dedupe_window(make_inbox: MakeInbox) -> None:
    inbox = await make_inbox(dedupe_seconds=0.2)
    assert await inbox.append([event(1)]) == 1
    assert await inbox.append([event(1)]) == 0

    await anyio.sleep(0.3)  # the window is wall-clock time; nothing else to wait for

    assert await inbox.append([event(1)]) == 1
    assert await inbox.append([event(1)]) == 0


# -- conversation state --------------------------------------------------------------------


def visible(stored: StoredState | None) -> tuple[str | None, dict[str, object]] | None:
    """A record as a user sees it: a cleared one (NATS keeps it empty) is none."""
    if stored is None or (stored.state is None and not stored.data):
        return None
    return stored.state, stored.data


async def test_every_backend_keeps_state(inbox: Inbox) -> None:
    assert inbox.keeps_state
    assert await inbox.load_state("491511111") is None


async def test_state_commits_with_the_ack(inbox: Inbox) -> None:
    await inbox.append([event(1), event(2, "4917")])
    first, second = await claim_n(inbox, 2)
    before = await inbox.load_state(first.conversation)
    write = StateWrite(first.conversation, "Signup.name", {"n": 1}, first.seq)
    await inbox.ack_with_state([first.seq, second.seq], [write])

    assert before is None
    assert not write.failed
    stored = await inbox.load_state(first.conversation)
    assert stored is not None
    assert (stored.state, stored.data, stored.seq) == ("Signup.name", {"n": 1}, first.seq)
    assert await inbox.load_state("4917") is None
    assert inbox.backlog() == 0
    await claim_nothing(inbox)


async def test_cached_state_answers_as_load_state_or_not_at_all(inbox: Inbox) -> None:
    await inbox.append([event(1), event(2)])
    first, second = await claim_n(inbox, 2)
    conversation = first.conversation
    await inbox.ack_with_state(
        [first.seq], [StateWrite(conversation, "A", {"count": 1}, first.seq)]
    )
    stored = await inbox.load_state(conversation)
    cached = inbox.cached_state(conversation)
    assert visible(stored) == ("A", {"count": 1})
    # A backend answers from memory what load_state would, or says it does not know.
    assert cached is NOT_CACHED or visible(cached) == visible(stored)
    stored = await inbox.load_state(conversation)
    assert stored is not None
    cleared = StateWrite(conversation, None, {}, second.seq, base=stored.revision)
    await inbox.ack_with_state([second.seq], [cleared])
    cached = inbox.cached_state(conversation)
    assert cached is NOT_CACHED or visible(cached) is None
    assert visible(await inbox.load_state(conversation)) is None


async def test_writes_of_one_batch_apply_in_order_and_a_later_one_builds_on_an_earlier(
    inbox: Inbox,
) -> None:
    await inbox.append([event(n) for n in range(3)])
    claimed = await claim_n(inbox, 3)
    conversation = claimed[0].conversation
    one = StateWrite(conversation, "A", {"count": 1}, claimed[0].seq)
    two = StateWrite(conversation, "B", {"count": 2}, claimed[1].seq, after=one)
    await inbox.ack_with_state([e.seq for e in claimed[:2]], [one, two])
    assert visible(await inbox.load_state(conversation)) == ("B", {"count": 2})

    stored = await inbox.load_state(conversation)
    assert stored is not None
    cleared = StateWrite(conversation, None, {}, claimed[2].seq, base=stored.revision)
    await inbox.ack_with_state([claimed[2].seq], [cleared])
    assert not cleared.failed
    assert visible(await inbox.load_state(conversation)) is None
    assert inbox.backlog() == 0


async def test_put_state_sets_and_clears_outside_events(inbox: Inbox) -> None:
    await inbox.put_state("4917", "Order.size", {"size": "L"})
    assert visible(await inbox.load_state("4917")) == ("Order.size", {"size": "L"})
    await inbox.put_state("4917", None, {"kept": True})
    assert visible(await inbox.load_state("4917")) == (None, {"kept": True})
    await inbox.put_state("4917", None, {})
    assert visible(await inbox.load_state("4917")) is None


async def test_a_plain_ack_leaves_state_alone(inbox: Inbox) -> None:
    await inbox.put_state("491511111", "Kept", {})
    await inbox.append([event(1)])
    [claimed] = await claim_n(inbox, 1)
    await inbox.ack([claimed.seq])
    assert visible(await inbox.load_state("491511111")) == ("Kept", {})


async def test_state_expires_after_its_ttl(make_inbox: MakeInbox) -> None:
    inbox = await make_inbox(state_ttl=1.0)
    await inbox.put_state("4917", "Soon.gone", {})
    assert visible(await inbox.load_state("4917")) == ("Soon.gone", {})
    deadline = time.monotonic() + 10
    while await inbox.load_state("4917") is not None:
        assert time.monotonic() < deadline, "the state outlived its TTL by 9 s"
        await anyio.sleep(0.1)
