"""Handing events out of a sqlite inbox file (``whizrouter.inbox.sqlite.claims``): again after
a restart or a crash, never lost to a cancelled claim, and the backlog re-counted once."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from tests.sqliteinbox import SqliteTrace, claim_n, event, opened, trace, traced
from whizrouter.inbox.base import StoredEvent
from whizrouter.inbox.sqlite import SqliteInbox

__all__ = ["opened", "trace", "traced"]  # the fixtures, imported so pytest finds them


async def test_unsettled_events_are_handed_out_again_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    first = SqliteInbox(path)
    await first.open()
    await first.append([event(n) for n in range(1, 5)])
    done, failing = await first.claim(2)
    await first.ack([done.seq])
    await first.record_attempt(failing.seq, 1, "boom")
    await first.close()

    second = SqliteInbox(path)
    await second.open()
    assert second.backlog() == 3
    claimed = await claim_n(second, 3)
    # m:2 failed once, and its retry may have started: no run is counted for that, since
    # nobody knows; m:3 and m:4 were never handed out.
    assert [(e.key, e.attempts, e.maybe_ran) for e in claimed] == [
        ("m:2", 1, True),
        ("m:3", 0, False),
        ("m:4", 0, False),
    ]
    # The dispatcher counts the next run of a maybe_ran event before it starts it.
    await second.count_run(claimed[0].seq)
    await second.close()  # a crash: no release

    third = SqliteInbox(path)
    await third.open()
    claimed = await claim_n(third, 3)
    await third.close()
    # All three were taken by the crashed process; only the counted run counts.
    assert [(e.key, e.attempts, e.maybe_ran) for e in claimed] == [
        ("m:2", 2, True),
        ("m:3", 0, True),
        ("m:4", 0, True),
    ]


KILLED_CHILD = """
import asyncio, os, signal, sys
from whizrouter.inbox.base import RawEvent
from whizrouter.inbox.sqlite import SqliteInbox


async def main():
    inbox = SqliteInbox(sys.argv[1])
    await inbox.open()
    await asyncio.gather(*(
        inbox.append([RawEvent("message", f"m:{n}", f"c{n % 7}", b"x" * 500)]) for n in range(200)
    ))
    claimed = await inbox.claim(50)
    assert len(claimed) == 50
    print("stored", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_killed_process_loses_no_appended_event(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    with anyio.fail_after(30):
        child = await anyio.run_process(
            [sys.executable, "-c", KILLED_CHILD, str(path)], check=False
        )
    assert child.stdout == b"stored\n", child.stderr.decode()
    assert child.returncode == -9

    inbox = SqliteInbox(path)
    await inbox.open()
    try:
        claimed = await claim_n(inbox, 200)  # the kernel dropped the child's consumer lock
    finally:
        await inbox.close()
    assert sorted(e.key for e in claimed) == sorted(f"m:{n}" for n in range(200))
    # The 50 the child held may have run: they say so, and count no attempt.
    assert all(e.attempts == 0 for e in claimed)
    assert sum(e.maybe_ran for e in claimed) == 50


async def test_a_cancelled_claim_loses_no_event(traced: SqliteInbox, trace: SqliteTrace) -> None:
    opened = traced
    await opened.append([event(0)])
    await opened.ack([e.seq for e in await claim_n(opened, 1)])
    await opened.append([event(1), event(2)])

    async with anyio.create_task_group() as tg:
        trace.pause_at("UPDATE meta")  # the writer is taking the events for this claim
        tg.start_soon(opened.claim, 10)
        await trace.wait_paused()
        tg.cancel_scope.cancel()
    trace.resume()

    assert [e.key for e in await claim_n(opened, 2)] == ["m:1", "m:2"]


async def test_a_backlog_recount_in_the_same_commit_as_appends_counts_them_once(
    opened: SqliteInbox, tmp_path: Path
) -> None:
    # A receiver-only process shares the file: its writes make the bot's next claim recount
    # the backlog. When that claim commits in one group with the bot's own appends (which
    # run first), the appends were counted twice and the backlog drifted upwards for good.
    assert await opened.append([event(1)]) == 1
    receiver = SqliteInbox(tmp_path / "inbox.db")
    await receiver.open()
    try:
        assert await receiver.append([event(2)]) == 1
    finally:
        await receiver.close()
    writer = opened._writer
    assert writer is not None
    started, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        started.set()
        release.wait(5)

    async with anyio.create_task_group() as group:
        group.start_soon(opened._submit, hold)
        await anyio.to_thread.run_sync(started.wait, 5)
        # Queued while the writer is busy, claim first: the next group runs both.
        claimed: list[StoredEvent] = []

        async def claim() -> None:
            claimed.extend(await opened.claim(10))

        async def queued(count: int) -> None:
            with anyio.fail_after(5):
                # The queue belongs to the writer thread: no event says when a job is on it.
                while writer._queue.qsize() < count:
                    await anyio.lowlevel.checkpoint()

        group.start_soon(claim)
        await queued(1)
        group.start_soon(opened.append, [event(3)])
        await queued(2)
        release.set()
    assert {e.key for e in claimed} >= {"m:1", "m:2"}
    assert opened.backlog() == 3
    assert (await opened.stats())["pending"] == 3


async def test_events_handed_out_from_memory_are_the_files_next_rows(opened: SqliteInbox) -> None:
    # The first claim reads the file; after it, this process's appends are handed out from
    # memory, a few at a time when the claim asks for fewer, and equal to what was stored.
    await opened.append([event(1)])
    assert [e.key for e in await claim_n(opened, 1)] == ["m:1"]
    await opened.append([event(2), event(3), event(1)])
    await opened.append([event(4, body=b'{"n":4}')])
    first = await opened.claim(2)
    rest = await opened.claim(10)
    assert [e.key for e in first + rest] == ["m:2", "m:3", "m:4"]
    assert [e.seq for e in first + rest] == sorted(e.seq for e in first + rest)

    with contextlib.closing(sqlite3.connect(opened.path)) as conn:
        columns = "seq, kind, key, conversation, body, attempts, received_at"
        stored = {row[0]: row[1:] for row in conn.execute(f"SELECT {columns} FROM events")}
    for e in first + rest:
        assert stored[e.seq] == (
            e.kind, e.key, e.conversation, e.body, e.attempts, e.received_at
        ), e  # fmt: skip
        assert not e.maybe_ran


async def test_rows_another_process_appends_are_handed_out_in_order(
    opened: SqliteInbox,
) -> None:
    receiver = SqliteInbox(opened.path)  # a receiver-only process on the same file
    await receiver.open()
    try:
        await opened.append([event(1)])
        assert [e.key for e in await claim_n(opened, 1)] == ["m:1"]
        await opened.append([event(2)])
        assert await receiver.append([event(3)]) == 1
        await opened.append([event(4)])
        handed = await claim_n(opened, 3)
        assert [e.key for e in handed] == ["m:2", "m:3", "m:4"]
        await opened.append([event(5)])  # and from memory again after that
        assert [e.key for e in await claim_n(opened, 1)] == ["m:5"]
        assert opened.backlog() == 5
    finally:
        await receiver.close()
