"""The sqlite inbox's dedupe window (``whizrouter.inbox.sqlite.seen``): recent keys, merged
into the index in key order, shared by processes, reloaded after a rollback, pruned by age."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import cast

import anyio
import anyio.lowlevel
import pytest

from tests.sqliteinbox import SqliteTrace, claim_n, event, trace, traced
from whizrouter.errors import InboxError
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.inbox.sqlite import seen as sqlite_seen

__all__ = ["trace", "traced"]  # the fixtures, imported so pytest finds them


async def test_dedupe_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    first = SqliteInbox(path)
    await first.open()
    await first.append([event(1)])
    await first.ack([e.seq for e in await claim_n(first, 1)])
    await first.close()

    second = SqliteInbox(path)
    await second.open()
    try:
        assert await second.append([event(1), event(2)]) == 1
        assert await second.stats() == {"pending": 1, "dead": 0, "seen": 2}
    finally:
        await second.close()


def level_sizes(path: Path) -> tuple[int, int]:
    """Keys in the append-only level and in the index, read by another connection."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        recent = conn.execute("SELECT count(*) FROM seen_recent").fetchone()[0]
        return recent, conn.execute("SELECT count(*) FROM seen").fetchone()[0]


# The last statement of a merge: its keys are in the index, their recent rows go.
MERGE_END = "DELETE FROM seen_recent WHERE id <="


async def test_keys_merged_into_the_index_still_drop_redeliveries(
    tmp_path: Path, trace: SqliteTrace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_seen, "MERGE_SLICE", 7)  # several slices per merge
    path = tmp_path / "inbox.db"
    inbox = SqliteInbox(path, recent_keys=40)
    await inbox.open()
    try:
        order = [(n * 37) % 100 for n in range(40)]  # in no particular order, as ids arrive
        assert [await inbox.append([event(n)]) for n in order[:-1]] == [1] * 39
        assert level_sizes(path) == (39, 0)
        trace.pause_at(MERGE_END)
        assert await inbox.append([event(order[-1])]) == 1  # the 40th key starts a merge
        await trace.wait_paused()
        trace.resume()
        await inbox.stats()  # queued behind the merge's last transaction
        assert level_sizes(path) == (0, 40)
        assert await inbox.append([event(n) for n in order]) == 0
        assert await inbox.append([event(n) for n in range(100, 105)] + [event(order[0])]) == 5
        assert await inbox.stats() == {"pending": 45, "dead": 0, "seen": 45}
    finally:
        await inbox.close()
    reopened = SqliteInbox(path, recent_keys=40)
    await reopened.open()
    try:
        assert await reopened.append([event(n) for n in [*order, *range(100, 107)]]) == 2
        assert (await reopened.stats())["seen"] == 47
    finally:
        await reopened.close()


async def test_a_merge_sorts_its_keys_off_the_writer_and_deletes_its_rows_in_slices(
    tmp_path: Path, trace: SqliteTrace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sorting a whole merge, or deleting its rows, in one statement held every commit group
    # back for tens of milliseconds: the plan is read on a thread of its own, the rows go
    # a slice at a time.
    monkeypatch.setattr(sqlite_seen, "MERGE_SLICE", 4)
    monkeypatch.setattr(sqlite_seen, "DROP_SLICE", 5)
    path = tmp_path / "inbox.db"
    inbox = SqliteInbox(path, recent_keys=30)
    await inbox.open()
    try:
        order = [(n * 37) % 100 for n in range(30)]
        for n in order[:-1]:
            assert await inbox.append([event(n), event(order[0])]) == 1  # and a redelivery
        writer = {thread for thread, sql in trace.calls if sql.startswith("INSERT INTO events")}
        trace.pause_at("SELECT json_group_array(key)")  # the plan, while it is read
        assert await inbox.append([event(order[-1])]) == 1  # the 30th key: a merge is due
        await trace.wait_paused()
        # The writer goes on committing while the plan is read.
        assert await inbox.append([event(500)]) == 1
        trace.resume()
        for _ in range(500):  # the merge's last steps run between groups: up to 5 s
            if level_sizes(path)[0] <= 1:  # every merged row gone; event 500's stays recent
                break
            await anyio.sleep(0.01)
        planners = {t for t, sql in trace.calls if sql.startswith("SELECT json_group_array")}
        drops = [sql for _, sql in trace.calls if sql.startswith(MERGE_END)]
        assert planners and not planners & writer
        assert len(drops) >= 30 // 5
        assert level_sizes(path) == (1, 30)
        assert await inbox.append([event(n) for n in [*order, 500]]) == 0
        assert (await inbox.stats())["seen"] == 31
    finally:
        await inbox.close()


async def test_a_receiver_sees_keys_another_process_stored_before_and_after_a_merge(
    tmp_path: Path, trace: SqliteTrace
) -> None:
    path = tmp_path / "inbox.db"
    bot = SqliteInbox(path, recent_keys=10)
    receiver = SqliteInbox(path, recent_keys=1000)  # its own connection, as in another process
    await bot.open()
    await receiver.open()
    try:
        assert await receiver.append([event(1)]) == 1  # the receiver now mirrors the recent keys
        assert await bot.append([event(n) for n in range(2, 6)]) == 4
        assert await receiver.append([event(n) for n in range(1, 7)]) == 1  # only m:6 is new
        assert await bot.append([event(n) for n in range(1, 8)]) == 1  # m:7
        trace.pause_at(MERGE_END)
        assert await bot.append([event(n) for n in range(8, 20)]) == 12  # passes recent_keys
        await trace.wait_paused()
        trace.resume()
        await bot.stats()
        assert level_sizes(path) == (0, 19)
        # The receiver's mirror is out of date: the merge told it to reload.
        assert await receiver.append([event(n) for n in range(1, 21)]) == 1  # m:20
        assert await bot.append([event(n) for n in range(1, 21)]) == 0
    finally:
        await receiver.close()
        await bot.close()


async def test_a_version_1_file_is_upgraded_and_keeps_its_dedupe_keys(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            """
            CREATE TABLE seen (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
            CREATE INDEX seen_at ON seen(at);
            CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            INSERT INTO meta VALUES ('claimed_through', 0);
            PRAGMA user_version = 1;
            """
        )
        conn.execute("INSERT INTO seen VALUES ('m:1', ?)", (time.time(),))
        conn.commit()
    inbox = SqliteInbox(path)
    await inbox.open()
    try:
        assert await inbox.append([event(1), event(2)]) == 1
        assert await inbox.stats() == {"pending": 1, "dead": 0, "seen": 2}
    finally:
        await inbox.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


async def test_a_rolled_back_group_forgets_the_keys_it_had_checked(
    traced: SqliteInbox, trace: SqliteTrace
) -> None:
    await traced.append([event(1)])  # the recent keys are now mirrored in memory
    trace.pause_at("BEGIN")
    outcomes: list[int | str] = []

    async def append(n: int, body: bytes) -> None:
        try:
            outcomes.append(await traced.append([event(n, body=body)]))
        except InboxError:
            outcomes.append("failed")

    unstorable = cast(bytes, object())
    async with anyio.create_task_group() as tg:
        tg.start_soon(append, 2, b"{}")
        await trace.wait_paused()
        # Queued behind it, one group: m:3 fails at the insert, after its key was checked.
        tg.start_soon(append, 3, unstorable)
        tg.start_soon(append, 4, b"{}")
        await anyio.wait_all_tasks_blocked()
        trace.resume()
    assert sorted(outcomes, key=str) == [1, 1, "failed"]
    # The provider's retry of m:3 is stored; m:1, m:2 and m:4 stay redeliveries.
    assert await traced.append([event(n) for n in range(1, 5)]) == 1
    assert await traced.stats() == {"pending": 4, "dead": 0, "seen": 4}


async def test_expired_dedupe_keys_are_pruned_in_the_background(
    tmp_path: Path, trace: SqliteTrace
) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.db", dedupe_seconds=0.05, prune_interval=0.02)
    await inbox.open()
    try:
        await inbox.append([event(1), event(2)])
        await anyio.sleep(0.1)  # the dedupe window is wall-clock time
        trace.pause_at("DELETE FROM seen")  # the next prune, which finds them expired
        await trace.wait_paused()
        trace.resume()
        assert await inbox.stats() == {"pending": 2, "dead": 0, "seen": 0}
        assert await inbox.append([event(1)]) == 1
    finally:
        await inbox.close()
