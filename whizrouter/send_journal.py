"""The send journal: the sends of a handler's run, so a later run of the event sends none twice.

Every send made through a handler's context (``ctx.reply*``, ``ctx.react``, the sends of
``ctx.client``) goes through the ``SendJournal`` of its event. A send has a slot: its ordinal
among the run's journaled sends (``#1``, ``#2``, ...) or the caller's ``idempotency_key=``
(``k:<key>``). Once the provider answered, the slot, a hash of the request and the returned
message id go to the inbox (``Inbox.journal_record``), and the send returns without waiting
for them to be durable: the inbox writes them before it acknowledges the event, and the run's
next send that must reach the provider first waits for them, so at most one send of a run is
ever accepted by the provider and not yet recorded (the window a crash can repeat, stated in
docs/exactly-one-reply.md). A record the inbox could not write is logged by the inbox; this
journal keeps it in memory, so a retry in this process still finds it.

On a later run of the same event (a retry, a restart after a crash, a replayed dead letter) a
send whose slot holds the same hash returns the recorded id without a request; one whose
request differs is sent and its entry replaced. The inbox deletes an event's entries when it
acknowledges the event or drops its dead letter.

An event's entries are read from the inbox at its first send in this process
(``Inbox.journal_entries``; backends answer from memory for an event that cannot have any);
later attempts in the same process use what the journal already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from whizrouter.inbox.base import Inbox, JournalEntry

__all__ = [
    "JournalEntry",
    "JournalObserver",
    "SendJournal",
    "SendJournals",
    "request_hash",
    "wait_recorded",
]

log = logging.getLogger("whizrouter.send_journal")

#: Told of every send answered from the journal: (event key, slot, recorded message id).
JournalObserver = Callable[[str, str, str], None]


def request_hash(path: str, body: Mapping[str, Any]) -> str:
    """A short, stable hash of a send: its path and body, keys sorted."""
    payload = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(path.encode() + b"\n" + payload, digest_size=16).hexdigest()


class SendJournal:
    """The journal of one event's sends, held by its ``Context`` for all of its runs here.

    Args:
        inbox: where entries are read and recorded.
        event_key: the event's dedupe key (stable across retries and replays).
        observer: told of every send answered from the journal (the test kit), or None.
    """

    __slots__ = ("_entries", "_event_key", "_inbox", "_observer", "_ordinal", "_recording")

    def __init__(self, inbox: Inbox, event_key: str, observer: JournalObserver | None) -> None:
        self._inbox = inbox
        self._event_key = event_key
        self._observer = observer
        self._ordinal = 0
        self._entries: dict[str, JournalEntry] | None = None
        self._recording: Awaitable[None] | None = None  # the last record, until awaited

    def new_run(self) -> None:
        """A new attempt starts: its sends count their ordinals from 1 again."""
        self._ordinal = 0

    async def send(
        self,
        path: str,
        body: Mapping[str, Any],
        post: Callable[[], Awaitable[str]],
        idempotency_key: str | None,
    ) -> str:
        """The message id of this send: recorded by an earlier run, or from ``post()``."""
        # The slot is taken before the first await, so concurrent sends keep call order.
        if idempotency_key is None:
            self._ordinal += 1
            slot = f"#{self._ordinal}"
        else:
            slot = "k:" + idempotency_key
        digest = request_hash(path, body)
        entries = self._entries
        if entries is None:
            loaded = await self._inbox.journal_entries(self._event_key)
            entries = self._entries
            if entries is None:  # another send of this run may have loaded them meanwhile
                entries = self._entries = dict(loaded)
        entry = entries.get(slot)
        if entry is not None:
            if entry.request_hash == digest:
                if self._observer is not None:
                    self._observer(self._event_key, slot, entry.message_id)
                return entry.message_id
            log.info(
                "send %s of event %s differs from the one an earlier run sent; sending it",
                slot,
                self._event_key,
            )
        recording, self._recording = self._recording, None
        if recording is not None:
            await wait_recorded(recording)
        message_id = await post()
        entry = entries[slot] = JournalEntry(digest, message_id)
        self._recording = self._inbox.journal_record(self._event_key, slot, entry)
        return message_id


async def wait_recorded(recording: Awaitable[None]) -> None:
    """Wait until a journal record is durable, or failed (the inbox logged that).

    Shielded: a handler cancelled meanwhile (its timeout, a stop) is cancelled, but the write
    goes on, and so does every other record committed with it.
    """
    with contextlib.suppress(Exception):
        await asyncio.shield(recording)


class SendJournals:
    """The app's side of the journal: builds the ``SendJournal`` of each event that sends.

    Args:
        inbox: returns the app's inbox (it may be replaced until the app starts).

    Attributes:
        observer: told of every send answered from the journal; the test kit's ``BotTester``
            sets it to show, per event, which sends were not sent again.
    """

    __slots__ = ("_inbox", "observer")

    def __init__(self, inbox: Callable[[], Inbox]) -> None:
        self._inbox = inbox
        self.observer: JournalObserver | None = None

    def for_event(self, event_key: str) -> SendJournal:
        """The journal of one event's runs in this process."""
        return SendJournal(self._inbox(), event_key, self.observer)
