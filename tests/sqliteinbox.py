"""Helpers shared by the sqlite inbox tests: events, claiming, and a tracer of sqlite calls.

Test modules import the fixtures from here (``from tests.sqliteinbox import opened``) and name
them in ``__all__`` so that pytest finds them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.lowlevel
import orjson
import pytest

from whizrouter.inbox.base import RawEvent, StoredEvent
from whizrouter.inbox.sqlite import SqliteInbox


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
