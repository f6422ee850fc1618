"""Quiet under failure: a storage failure that repeats with every callback, commit or settle
is logged at most once every 10 s per kind, not once per occurrence."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.errors import InboxUnavailableError
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.inbox.sqlite.checkpointer import Checkpointer
from whizrouter.testing import text_callback

MakeApp = Callable[..., WhizRouter]
Serve = Callable[[WhizRouter], Awaitable[Any]]


def loud(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_200_callbacks_on_a_full_disk_log_a_line_or_two(
    make_app: MakeApp, serve: Serve, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.db")
    app = make_app(inbox=inbox)

    @app.on_message()
    async def nothing(message: TextMessage, ctx: Context) -> None:
        pass

    client = await serve(app)

    def no_room(conn: sqlite3.Connection) -> object:  # as good as a full disk
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        return conn.execute(f"PRAGMA max_page_count={pages}").fetchone()

    await inbox._submit(no_room)
    caplog.clear()
    for n in range(200):
        callback = text_callback("x" * 20_000, message_id=f"wamid.{n}")
        assert (await client.post("/webhook", json=callback)).status == 503
    assert 1 <= len(loud(caplog)) <= 3, [r.getMessage() for r in loud(caplog)]
    assert all(r.exc_info is None for r in loud(caplog))


def test_a_failing_checkpoint_is_logged_once_every_10_s(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Not a database: every checkpoint fails, as on a full disk.
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database file" * 200)
    checkpointer = Checkpointer(path, "test", busy_timeout=1.0)
    checkpointer.start()
    try:
        for wanted in range(1, 21):
            checkpointer.request()
            deadline = time.monotonic() + 5
            while checkpointer.failures < wanted:  # the thread's own count, with a deadline
                assert time.monotonic() < deadline
                time.sleep(0.001)
    finally:
        checkpointer.stop()
    lines = [r for r in caplog.records if "checkpoint failed" in r.getMessage()]
    assert len(lines) == 1 and "(1 so far)" in lines[0].getMessage()


class UnsettlingInbox(MemoryInbox):
    """A memory inbox whose acks fail as on a full disk; ``failed`` is set at the third."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.failed = asyncio.Event()

    async def ack(self, seqs: Sequence[int]) -> None:
        self.calls += 1
        if self.calls == 3:
            self.failed.set()
        raise InboxUnavailableError("database or disk is full; free disk space")


async def test_failed_settles_are_logged_once_without_a_traceback(
    make_app: MakeApp, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    inbox = UnsettlingInbox()
    app.replace_parts(inbox=inbox)

    @app.on_message()
    async def quick(message: TextMessage, ctx: Context) -> None:
        pass

    client = await serve(app)
    for n in range(10):
        callback = text_callback("hi", wa_id=f"3160000000{n}", message_id=f"wamid.{n}")
        assert (await client.post("/webhook", json=callback)).status == 200
    await asyncio.wait_for(inbox.failed.wait(), 5)
    lines = [r for r in caplog.records if "could not settle" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert lines[0].levelno == logging.ERROR
