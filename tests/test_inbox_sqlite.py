"""What only the sqlite inbox promises: durability, its URL, group commit and its threads.

The behaviour every backend shares is in ``test_inbox_contract.py``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.lowlevel
import orjson
import pytest

from whizrouter.errors import ConfigurationError, InboxError, InboxFullError
from whizrouter.inbox.base import RawEvent, StoredEvent
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.inbox.sqlite import seen as sqlite_seen


def event(n: int, conversation: str = "491511111", body: bytes | None = None) -> RawEvent:
    body = orjson.dumps({"n": n}) if body is None else body
    return RawEvent(kind="message", key=f"m:{n}", conversation=conversation, body=body)


async def claim_n(inbox: SqliteInbox, count: int, *, limit: int = 1000) -> list[StoredEvent]:
    claimed: list[StoredEvent] = []
    with anyio.fail_after(5):
        while len(claimed) < count:
            claimed.extend(await inbox.claim(limit))
    assert len(claimed) == count
    return claimed


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[SqliteInbox]:
    inbox = SqliteInbox(tmp_path / "inbox.db", poll_interval=0.05)
    await inbox.open()
    yield inbox
    await inbox.close()


class SqliteTrace:
    """Sees every statement sqlite runs in this process, on which thread; can pause one.

    ``sqlite3.connect`` is wrapped so each new connection reports its statements through
    ``set_trace_callback``, which runs on the thread that executes the statement.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []
        self.paused = threading.Event()
        self._resume = threading.Event()
        self._pause_at: str | None = None
        self._connect = sqlite3.connect

    def connect(self, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        self.calls.append((threading.get_ident(), "connect"))
        conn = cast(sqlite3.Connection, self._connect(*args, **kwargs))
        conn.set_trace_callback(self._statement)
        return conn

    def _statement(self, sql: str) -> None:
        self.calls.append((threading.get_ident(), sql))
        if self._pause_at is not None and sql.startswith(self._pause_at):
            self._pause_at = None
            self.paused.set()
            self._resume.wait(10)

    def pause_at(self, prefix: str) -> None:
        """Hold the next statement starting with ``prefix`` until ``resume``."""
        self.paused.clear()
        self._resume.clear()
        self._pause_at = prefix

    async def wait_paused(self) -> None:
        assert await anyio.to_thread.run_sync(self.paused.wait, 5)

    def resume(self) -> None:
        self._resume.set()


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[SqliteTrace]:
    tracer = SqliteTrace()
    monkeypatch.setattr(sqlite3, "connect", tracer.connect)
    yield tracer
    tracer.resume()


@pytest.fixture
async def traced(trace: SqliteTrace, tmp_path: Path) -> AsyncIterator[SqliteInbox]:
    """An open inbox whose writer connection reports to ``trace``."""
    inbox = SqliteInbox(tmp_path / "inbox.db", poll_interval=0.05)
    await inbox.open()
    yield inbox
    trace.resume()
    await inbox.close()


# -- durability ------------------------------------------------------------------------------


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


# -- the dedupe window: recent keys, merged into the index in key order ----------------------


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


# -- configuration ---------------------------------------------------------------------------


async def test_three_slashes_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    inbox = SqliteInbox.from_url("sqlite:///inbox.db", max_backlog=7)
    assert inbox.path == tmp_path / "inbox.db"
    assert inbox.synchronous == "normal"
    assert inbox.description == "sqlite:///inbox.db"
    assert inbox.durable
    await inbox.open()
    await inbox.append([event(1)])
    await inbox.close()
    assert (tmp_path / "inbox.db").is_file()


def test_four_slashes_are_an_absolute_path() -> None:
    inbox = SqliteInbox.from_url("sqlite:////var/lib/bot/inbox.db")
    assert inbox.path == Path("/var/lib/bot/inbox.db")
    assert inbox.description == "sqlite:////var/lib/bot/inbox.db"


@pytest.mark.parametrize("value", ["full", "FULL", "normal"])
def test_synchronous_is_read_from_the_query(value: str) -> None:
    inbox = SqliteInbox.from_url(f"sqlite:///data/inbox.db?synchronous={value}")
    assert inbox.synchronous == value.lower()
    assert inbox.path == Path("data/inbox.db").absolute()


def test_recent_keys_is_read_from_the_query() -> None:
    inbox = SqliteInbox.from_url("sqlite:///x.db?synchronous=full&recent_keys=5000")
    assert (inbox.synchronous, inbox.recent_keys) == ("full", 5000)
    assert SqliteInbox.from_url("sqlite:///x.db").recent_keys == 50_000


def test_the_factory_builds_a_sqlite_inbox() -> None:
    inbox = inbox_from_url("sqlite:///x.db?synchronous=full", max_backlog=5, dedupe_seconds=9)
    assert isinstance(inbox, SqliteInbox)
    assert inbox.synchronous == "full"


async def test_synchronous_full_is_applied(tmp_path: Path, trace: SqliteTrace) -> None:
    inbox = SqliteInbox.from_url(f"sqlite:///{tmp_path}/inbox.db?synchronous=full")
    await inbox.open()
    await inbox.close()
    assert "PRAGMA synchronous = FULL" in [sql for _, sql in trace.calls]


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("sqlite://inbox.db", "names a host"),
        ("sqlite://host/inbox.db", "names a host"),
        ("sqlite:///", "names no database file"),
        ("sqlite:///data/", "names no database file"),
        ("sqlite:///:memory:", "WHIZROUTER_INBOX=memory"),
        ("sqlite:///x.db?synchronous=off", "synchronous='off' is not supported"),
        ("sqlite:///x.db?journal_mode=delete", "unknown parameter 'journal_mode'"),
        ("sqlite:///x.db?recent_keys=0", "recent_keys='0' is not a positive whole number"),
        ("sqlite:///x.db?recent_keys=lots", "write e.g. recent_keys=50000"),
        ("postgres://db/inbox", "not a sqlite URL"),
    ],
)
def test_a_bad_url_says_what_to_write(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match="sqlite:///") as error:
        SqliteInbox.from_url(url)
    assert complaint in str(error.value)


@pytest.mark.parametrize(
    "options",
    [
        {"synchronous": "off"},
        {"max_backlog": 0},
        {"dedupe_seconds": -1},
        {"poll_interval": 0},
        {"recent_keys": 0},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        SqliteInbox("inbox.db", **options)


async def test_a_missing_directory_fails_open_with_the_path(tmp_path: Path) -> None:
    inbox = SqliteInbox(tmp_path / "missing" / "inbox.db")
    with pytest.raises(InboxError, match="missing"):
        await inbox.open()
    with pytest.raises(InboxError, match="not open"):
        await inbox.append([event(1)])


async def test_a_file_that_is_not_a_database_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    path.write_bytes(b"not sqlite at all; " * 300)
    with pytest.raises(InboxError, match="not a database") as raised:
        await SqliteInbox(path).open()
    assert str(path) in str(raised.value)
    assert "move it aside" in str(raised.value)


class ReadOnlyFileInbox(SqliteInbox):
    """An inbox whose file turns out read-only once opened (root ignores chmod, so the
    error sqlite gives is raised here)."""

    def _prepare(self, conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")


async def test_a_healthy_file_that_cannot_be_written_is_not_to_be_moved_aside(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inbox.db"
    with pytest.raises(InboxError, match="readonly database") as raised:
        await ReadOnlyFileInbox(path).open()
    message = str(raised.value)
    assert f"check that {path} and its directory are writable" in message
    assert "do not move it aside" in message


async def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(InboxError, match="newer whizrouter"):
        await SqliteInbox(path).open()


async def test_a_closed_inbox_refuses_work(tmp_path: Path) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.db", poll_interval=0.05)
    await inbox.open()
    await inbox.close()
    await inbox.close()
    with pytest.raises(InboxError, match="not open"):
        await inbox.append([event(1)])
    with pytest.raises(InboxError, match="not open"):
        await inbox.claim(1)


async def test_close_ends_a_waiting_claim(opened: SqliteInbox) -> None:
    async def close_soon() -> None:
        await anyio.wait_all_tasks_blocked()
        await opened.close()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(close_soon)
            with pytest.raises(InboxError, match="not open"):
                await opened.claim(1)


# -- the writer thread -----------------------------------------------------------------------


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


async def test_concurrent_appends_never_pass_the_backlog_bound(tmp_path: Path) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.db", max_backlog=10)
    await inbox.open()
    outcomes: list[str] = []

    async def append(n: int) -> None:
        try:
            await inbox.append([event(n)])
            outcomes.append("stored")
        except InboxFullError:
            outcomes.append("full")

    try:
        async with anyio.create_task_group() as tg:
            for n in range(25):
                tg.start_soon(append, n)
        assert sorted(outcomes) == ["full"] * 15 + ["stored"] * 10
        assert inbox.backlog() == 10
    finally:
        await inbox.close()


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


# -- several processes -----------------------------------------------------------------------


async def test_another_process_can_replay_dead_letters_while_the_bot_runs(
    opened: SqliteInbox,
) -> None:
    await opened.append([event(1), event(2)])
    doomed, dropped = await claim_n(opened, 2)
    await opened.dead(doomed.seq, handler="bot:echo", attempts=5, error="boom")
    await opened.dead(dropped.seq, handler="bot:echo", attempts=5, error="boom")

    cli = SqliteInbox(opened.path)  # what `whizrouter dead ...` opens
    await cli.open()
    try:
        assert [(d.key, d.handler, d.attempts) for d in await cli.dead_letters()] == [
            ("m:1", "bot:echo", 5),
            ("m:2", "bot:echo", 5),
        ]
        assert await cli.drop([dropped.seq]) == 1
        assert await cli.replay() == 1
        assert await cli.stats() == {"pending": 1, "dead": 0, "seen": 2}
    finally:
        await cli.close()

    [again] = await claim_n(opened, 1)  # found by the bot's poll
    assert (again.key, again.attempts) == ("m:1", 0)
    assert opened.backlog() == 1
    await opened.ack([again.seq])
    assert opened.backlog() == 0


async def test_memory_stays_bounded_with_many_pending_events(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    body = b"x" * 2000
    writer = SqliteInbox(path)
    await writer.open()
    for start in range(0, 5000, 1000):
        await writer.append([event(n, body=body) for n in range(start, start + 1000)])
    await writer.close()
    assert (await anyio.Path(path).stat()).st_size > 10_000_000  # 10 MB of events on disk

    inbox = SqliteInbox(path)
    tracemalloc.start()
    try:
        await inbox.open()
        for _ in range(3):
            assert len(await inbox.claim(100)) == 100
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await inbox.close()
    assert inbox.backlog() == 5000
    assert peak < 2_000_000


# -- one consumer per file -------------------------------------------------------------------


def consumer_refusal(path: Path, pid: int | None) -> str:
    who = "another inbox in this process is" if pid is None else "another process is"
    return (
        f"{who} already handling events from {path}{'' if pid is None else f' (pid {pid})'}; "
        "run one bot per inbox file, or use a nats:// inbox to scale out"
    )


async def test_a_second_inbox_on_the_file_cannot_claim_until_the_first_closes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inbox.db"
    first, second = SqliteInbox(path, poll_interval=0.05), SqliteInbox(path, poll_interval=0.05)
    await first.open()
    await second.open()
    try:
        await first.append([event(1), event(2)])
        assert [e.key for e in await first.claim(1)] == ["m:1"]
        with pytest.raises(InboxError) as refused:
            await second.claim(10)
        # Separate opens of the lock file exclude each other even within one process.
        assert str(refused.value) == consumer_refusal(path, None)
        # The refused claim took nothing and counted nothing; the rest of the inbox works.
        assert await second.append([event(3)]) == 1
        assert await second.stats() == {"pending": 3, "dead": 0, "seen": 3}
        assert [e.key for e in await first.claim(10)] == ["m:2", "m:3"]
    finally:
        await first.close()
    try:
        # All three were held when their consumer stopped: each may have run (and the
        # refused claim changed nothing).
        claimed = await claim_n(second, 3)
        assert [(e.key, e.attempts, e.maybe_ran) for e in claimed] == [
            ("m:1", 0, True),
            ("m:2", 0, True),
            ("m:3", 0, True),
        ]
    finally:
        await second.close()


SECOND_CONSUMER = """
import asyncio, sys
from whizrouter.errors import InboxError
from whizrouter.inbox.sqlite import SqliteInbox

async def main():
    inbox = SqliteInbox(sys.argv[1])
    await inbox.open()
    try:
        print("claimed", *[e.key for e in await asyncio.wait_for(inbox.claim(10), 5)])
    except InboxError as exc:
        print(exc)
    finally:
        await inbox.close()

asyncio.run(main())
"""


@pytest.mark.slow
async def test_another_process_cannot_claim_while_the_bot_consumes(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    bot = SqliteInbox(path, poll_interval=0.05)
    await bot.open()
    second_process = [sys.executable, "-c", SECOND_CONSUMER, str(path)]
    try:
        await bot.append([event(1), event(2)])
        await claim_n(bot, 1, limit=1)
        with anyio.fail_after(30):
            child = await anyio.run_process(second_process)
        assert child.stdout.decode() == consumer_refusal(path, os.getpid()) + "\n"
    finally:
        await bot.close()

    with anyio.fail_after(30):  # closing gave the file up
        child = await anyio.run_process(second_process)
    assert child.stdout == b"claimed m:1 m:2\n"


async def test_opening_without_claiming_takes_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    cli = SqliteInbox(path)  # what `whizrouter dead ...` and `inbox stats` open
    await cli.open()
    try:
        await cli.append([event(1)])
        await cli.stats()
        await cli.dead_letters()
        await cli.replay()
    finally:
        await cli.close()
    assert not path.with_name("inbox.db.lock").exists()

    bot = SqliteInbox(path)
    await bot.open()
    try:
        await claim_n(bot, 1)
        assert path.with_name("inbox.db.lock").read_text() == f"{os.getpid()}\n"
    finally:
        await bot.close()
    assert path.with_name("inbox.db.lock").read_text() == ""  # kept, but no stale pid


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
