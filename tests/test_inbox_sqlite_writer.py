"""The sqlite inbox's writer thread (``whizrouter.inbox.sqlite.writer``): group commit, a
failing job failing alone, storage errors, and no sqlite call on the event loop thread."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import cast

import anyio
import anyio.lowlevel
import pytest

from tests.sqliteinbox import SqliteTrace, claim_n, event, trace, traced
from whizrouter.errors import InboxError
from whizrouter.inbox.sqlite import SqliteInbox

__all__ = ["trace", "traced"]  # the fixtures, imported so pytest finds them


async def test_concurrent_appends_share_one_commit(traced: SqliteInbox, trace: SqliteTrace) -> None:
    opened = traced
    results: list[int] = []

    async def append(n: int) -> None:
        results.append(await opened.append([event(n)]))

    async with anyio.create_task_group() as tg:
        trace.pause_at("BEGIN")
        tg.start_soon(append, 1)
        await trace.wait_paused()  # the writer is inside its group for append 1
        commits = opened.commits
        for n in range(2, 52):
            tg.start_soon(append, n)
        await anyio.wait_all_tasks_blocked()
        trace.resume()

    assert results == [1] * 51
    assert opened.commits - commits == 2  # append 1's group, then the other 50 together
    assert opened.backlog() == 51


async def test_an_append_that_fails_fails_alone(traced: SqliteInbox, trace: SqliteTrace) -> None:
    outcomes: dict[int, int | str] = {}

    async def append(n: int, body: bytes = b"{}") -> None:
        try:
            outcomes[n] = await traced.append([event(n, body=body)])
        except InboxError as exc:
            outcomes[n] = type(exc).__name__

    unstorable = cast(bytes, object())  # sqlite cannot bind it: the insert fails
    async with anyio.create_task_group() as tg:
        trace.pause_at("BEGIN")
        tg.start_soon(append, 1)
        await trace.wait_paused()
        commits = traced.commits
        for n in range(2, 22):
            tg.start_soon(append, n, unstorable if n == 11 else b"{}")
        await anyio.wait_all_tasks_blocked()
        trace.resume()

    assert outcomes == {n: "InboxError" if n == 11 else 1 for n in range(1, 22)}
    assert traced.commits - commits == 2  # the failure did not cost the others their commit
    assert traced.backlog() == 20
    # Its key was rolled back with it, so the provider's retry is stored.
    assert await traced.append([event(11)]) == 1


async def test_a_file_locked_too_long_fails_the_append_and_the_inbox_recovers(
    tmp_path: Path,
) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.db", busy_timeout=0.05)
    await inbox.open()
    try:
        with contextlib.closing(sqlite3.connect(inbox.path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(InboxError, match="locked"):
                await inbox.append([event(1)])
            other.execute("ROLLBACK")
        assert await inbox.append([event(1)]) == 1
        assert inbox.backlog() == 1
    finally:
        await inbox.close()


async def test_no_sqlite_call_runs_on_the_event_loop_thread(
    tmp_path: Path, trace: SqliteTrace
) -> None:
    loop_thread = threading.get_ident()
    inbox = SqliteInbox(tmp_path / "inbox.db", poll_interval=0.05, prune_interval=0.05)
    await inbox.open()
    await inbox.append([event(1), event(2), event(3)])
    first, second, third = await claim_n(inbox, 3)
    await inbox.record_attempt(first.seq, 1, "boom")
    await inbox.dead(first.seq, handler="h", attempts=2, error="boom")
    await inbox.dead(second.seq, handler="h", attempts=2, error="boom")
    await inbox.ack([third.seq])
    await inbox.dead_letters()
    await inbox.replay([first.seq])
    await inbox.drop([second.seq])
    await claim_n(inbox, 1)
    await inbox.stats()
    trace.pause_at("DELETE FROM seen")  # the background prune
    await trace.wait_paused()
    trace.resume()
    await inbox.close()

    statements = [sql for _, sql in trace.calls]
    assert "connect" in statements
    assert any(sql.startswith("INSERT INTO events") for sql in statements)
    assert [sql for thread, sql in trace.calls if thread == loop_thread] == []
    # The detector does catch a call made on the loop thread.
    sqlite3.connect(":memory:").close()
    assert trace.calls[-1] == (loop_thread, "connect")
