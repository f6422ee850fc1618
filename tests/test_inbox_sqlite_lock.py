"""One consuming process per sqlite inbox file (``whizrouter.inbox.sqlite.lock``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from tests.sqliteinbox import claim_n, event, opened
from whizrouter.errors import InboxError
from whizrouter.inbox.sqlite import SqliteInbox

__all__ = ["opened"]  # the fixtures, imported so pytest finds them


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
