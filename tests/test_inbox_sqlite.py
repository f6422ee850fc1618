"""What only the sqlite inbox promises: its settings, its lifecycle, several processes on a file.

The behaviour every backend shares is in ``test_inbox_contract.py``; the sqlite inbox's parts
have their own files (``test_inbox_sqlite_<module>.py``: url, connection, writer, claims, seen,
lock).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from tests.sqliteinbox import claim_n, event, opened
from whizrouter.errors import ConfigurationError, InboxError, InboxFullError
from whizrouter.inbox.sqlite import SqliteInbox

__all__ = ["opened"]  # the fixtures, imported so pytest finds them


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


async def test_acks_delete_exactly_the_seqs_given_as_a_run_or_not(opened: SqliteInbox) -> None:
    await opened.append([event(n) for n in range(1, 9)])
    seqs = [e.seq for e in await claim_n(opened, 8)]
    await opened.dead(seqs[2], handler="bot:echo", attempts=5, error="boom")

    await opened.ack(seqs[0:4])  # one run, a dead letter inside: it stays dead
    await opened.ack([seqs[4], seqs[4], seqs[6]])  # as many seqs as a run 4..6, not a run
    assert await opened.stats() == {"pending": 2, "dead": 1, "seen": 8}
    assert opened.backlog() == 2
    await opened.ack([seqs[7], seqs[5]])
    assert await opened.stats() == {"pending": 0, "dead": 1, "seen": 8}
