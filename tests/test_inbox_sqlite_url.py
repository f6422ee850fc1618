"""The ``sqlite:///`` inbox URL (``whizrouter.inbox.sqlite.url``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sqliteinbox import event
from whizrouter.errors import ConfigurationError
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.inbox.sqlite import SqliteInbox


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
