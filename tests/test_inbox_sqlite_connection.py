"""Opening the sqlite inbox file (``whizrouter.inbox.sqlite.connection``, ``schema``): its
pragmas, and what a file that cannot be used says to do."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from tests.sqliteinbox import SqliteTrace, event, trace
from whizrouter.errors import InboxError
from whizrouter.inbox.sqlite import SqliteInbox

__all__ = ["trace"]  # the fixtures, imported so pytest finds them


async def test_synchronous_full_is_applied(tmp_path: Path, trace: SqliteTrace) -> None:
    inbox = SqliteInbox.from_url(f"sqlite:///{tmp_path}/inbox.db?synchronous=full")
    await inbox.open()
    await inbox.close()
    assert "PRAGMA synchronous = FULL" in [sql for _, sql in trace.calls]


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
