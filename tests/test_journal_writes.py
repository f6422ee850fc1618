"""When the send journal's records become durable, and that an ack never overtakes them.

A send returns to the handler before its record is written. These tests pin down what keeps
that safe: on sqlite the row is written on its own within ``FLUSH_DELAY`` while the handler
still runs, before the run's next send reaches the provider, ahead of the event's ack, and
at close; a record that cannot be written is logged and the send is not failed. On NATS the
ack waits for the put under way, so no journal outlives its event.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import nats.js.errors
import pytest

from tests.conftest import AiohttpClient
from tests.natsinbox import opened
from tests.natsserver import nats_url, unique_stream
from tests.test_inbox_contract import claim_n, event
from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.errors import InboxError
from whizrouter.inbox.base import JournalEntry
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.inbox.sqlite.journal import FLUSH_DELAY
from whizrouter.send_journal import wait_recorded
from whizrouter.testing import FakeProvider, RecordedCall, StartBot, text_callback

__all__ = ["nats_url"]  # the fixture the NATS test asks for, imported so pytest finds it


def journal_rows(db: Path) -> list[tuple[str, str, str]]:
    """The journal's rows as another process sees the file: committed ones only."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT event_key, slot, message_id FROM send_journal ORDER BY event_key, slot"
        ).fetchall()


async def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until ``check()`` holds, polling; fail after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


async def served(
    app: WhizRouter, provider: FakeProvider, db: Path, aiohttp_client: AiohttpClient
) -> Callable[[str, str], Awaitable[int]]:
    """Serve ``app`` on a sqlite inbox in ``db``; returns a poster of text callbacks."""
    app.replace_parts(client=provider.client(), inbox=SqliteInbox(db))
    client = await aiohttp_client(app.make_web_app())

    async def post(text: str, message_id: str) -> int:
        body = text_callback(text, message_id=message_id, wa_id="15550001111")
        return (await client.post("/webhook", json=body)).status

    return post


async def test_a_reply_is_recorded_while_its_handler_still_runs_and_the_ack_clears_it(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    db = tmp_path / "inbox.db"
    replied, finish = asyncio.Event(), asyncio.Event()
    app = WhizRouter()

    @app.on_message(type="text")
    async def reply_then_work(message: TextMessage, ctx: Context) -> None:
        await ctx.reply("on it")
        replied.set()
        await finish.wait()  # a long handler: no ack, no other job to carry the row

    async with FakeProvider() as provider:
        post = await served(app, provider, db, aiohttp_client)
        assert await post("hi", "wamid.long") == 200
        await asyncio.wait_for(replied.wait(), 5)
        [sent] = provider.sent
        # Written by the buffer's timer alone, within FLUSH_DELAY and a commit.
        await until(lambda: len(journal_rows(db)) == 1, seconds=max(1.0, 100 * FLUSH_DELAY))
        [(key, slot, message_id)] = journal_rows(db)
        assert (key, slot) == ("m:wamid.long", "#1")
        assert message_id == sent.message_id
        finish.set()
        assert app.dispatcher is not None
        await app.dispatcher.wait_idle()
        assert journal_rows(db) == []


async def test_a_second_send_starts_only_once_the_first_is_recorded(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    db = tmp_path / "inbox.db"
    rows_at_each_send: list[list[tuple[str, str, str]]] = []
    app = WhizRouter()

    @app.on_message(type="text")
    async def two_replies(message: TextMessage, ctx: Context) -> None:
        await ctx.reply("first")
        await ctx.reply("second")

    def on_call(call: RecordedCall) -> None:
        if call.kind == "send":  # what the file holds when each send reaches the provider
            rows_at_each_send.append(journal_rows(db))

    async with FakeProvider(on_call=on_call) as provider:
        post = await served(app, provider, db, aiohttp_client)
        assert await post("hi", "wamid.two") == 200
        assert app.dispatcher is not None
        await app.dispatcher.wait_idle()

    assert [len(rows) for rows in rows_at_each_send] == [0, 1]
    assert rows_at_each_send[1][0][:2] == ("m:wamid.two", "#1")
    assert journal_rows(db) == []  # acknowledged: the journal went with the event


async def test_records_not_awaited_go_ahead_of_the_ack_and_are_written_at_close(
    tmp_path: Path,
) -> None:
    db = tmp_path / "inbox.db"
    inbox = SqliteInbox(db)
    await inbox.open()
    await inbox.append([event(1), event(2)])
    acked, kept = await claim_n(inbox, 2)
    inbox.journal_record(acked.key, "#1", JournalEntry("h1", "wamid.1"))
    inbox.journal_record(kept.key, "#1", JournalEntry("h2", "wamid.2"))
    await inbox.ack([acked.seq])  # in the same commit as the rows, after them
    assert journal_rows(db) == [(kept.key, "#1", "wamid.2")]

    inbox.journal_record(kept.key, "#2", JournalEntry("h3", "wamid.3"))
    await inbox.close()
    assert journal_rows(db) == [(kept.key, "#1", "wamid.2"), (kept.key, "#2", "wamid.3")]

    reopened = SqliteInbox(db)
    await reopened.open()
    try:
        assert await reopened.journal_entries(kept.key) == {
            "#1": JournalEntry("h2", "wamid.2"),
            "#2": JournalEntry("h3", "wamid.3"),
        }
    finally:
        await reopened.close()


async def test_a_record_that_cannot_be_written_is_logged_and_raises_only_when_awaited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "inbox.db"
    inbox = SqliteInbox(db)
    await inbox.open()
    try:
        with sqlite3.connect(db) as conn:  # the table vanishes under the running inbox
            conn.execute("DROP TABLE send_journal")
        recorded = inbox.journal_record("m:gone", "#1", JournalEntry("h", "wamid.9"))
        with (
            caplog.at_level(logging.WARNING, logger="whizrouter.inbox.sqlite"),
            pytest.raises(InboxError),
        ):
            await recorded
        assert "1 send journal row(s) could not be written" in caplog.text
        assert "sent again if their events run again after a restart" in caplog.text
    finally:
        await inbox.close()


class UnwritableJournal(MemoryInbox):
    """A memory inbox whose journal writes all fail, as a full disk would make them."""

    def journal_record(self, event_key: str, slot: str, entry: JournalEntry) -> Awaitable[None]:
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failed.set_exception(InboxError("the disk is full"))
        return failed


async def test_a_send_whose_record_fails_returns_its_id_and_a_retry_here_does_not_resend(
    bot_tester: StartBot,
) -> None:
    ids: list[str] = []
    app = WhizRouter(inbox=UnwritableJournal())

    @app.on_message(type="text")
    async def reply_twice_then_fail_once(message: TextMessage, ctx: Context) -> None:
        ids.append(await ctx.reply("first"))
        await ctx.reply("second")  # waits for the first record, which failed: not raised
        if ctx.attempt == 1:
            raise RuntimeError("fail once, so the retry runs in this process")

    tester = await bot_tester(app)
    await tester.text("hi", message_id="wamid.nojournal")

    # The retry found both sends in memory: two requests, not four, and the same id.
    assert tester.provider.send_requests == 2
    assert len(ids) == 2 and ids[0] == ids[1]
    assert await tester.dead_letters() == []


async def test_on_nats_an_ack_waits_for_the_put_under_way(nats_url: str) -> None:
    stream = unique_stream()
    async with opened(nats_url, stream) as inbox:
        await inbox.append([event(1)])
        [stored] = await claim_n(inbox, 1)
        inbox.journal_record(stored.key, "#1", JournalEntry("h", "wamid.1"))  # not awaited
        await inbox.ack([stored.seq])
        nc = await nats.connect(nats_url)
        try:
            kv = await nc.jetstream().key_value(f"{stream}_JOURNAL")
            with pytest.raises(nats.js.errors.NoKeysError):
                await kv.keys()  # put, then deleted by the ack: nothing left behind
        finally:
            await nc.close()


async def test_a_waiter_cancelled_leaves_the_records_it_shares_a_commit_with_alone(
    tmp_path: Path,
) -> None:
    db = tmp_path / "inbox.db"
    inbox = SqliteInbox(db)
    await inbox.open()
    try:
        first = inbox.journal_record("m:1", "#1", JournalEntry("h1", "wamid.1"))
        second = inbox.journal_record("m:2", "#1", JournalEntry("h2", "wamid.2"))
        # A handler waiting for its previous record is cancelled (its timeout, a stop).
        waiter = asyncio.create_task(wait_recorded(first))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await second  # the other event's record, in the same commit: written, not cancelled
        await first
        assert journal_rows(db) == [("m:1", "#1", "wamid.1"), ("m:2", "#1", "wamid.2")]
    finally:
        await inbox.close()
