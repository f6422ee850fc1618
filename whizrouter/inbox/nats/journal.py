"""The NATS inbox's send journal: a key-value bucket ``<stream>_JOURNAL`` beside the stream.

One key per event (the event key, base64url-encoded), whose value is the event's whole journal
as JSON ``{slot: [request hash, message id]}``. A send's ``put`` starts before the send returns
to the handler, which does not wait for it; the inbox's ``ack`` waits for the puts under way
before it acknowledges, so a journal never outlives its event's ack. A worker keeps the
journals of the events it holds that have one, so each send is one ``put``, and reads a journal
from the bucket only for an event that may have been run before: delivered again,
``maybe_ran``, or a replayed dead letter (a first run reads nothing). After an ack the event's
key is deleted; after a crash between the two, the bucket's TTL (the dedupe window) removes it.
A dead letter keeps its journal for its replay, within that TTL, and ``drop`` deletes it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Iterable

import nats.errors
import nats.js.errors
import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from whizrouter.errors import InboxError
from whizrouter.inbox.base import JournalEntry, StoredEvent
from whizrouter.inbox.nats.messages import MSG_ID
from whizrouter.inbox.nats.streams import StreamLayout

logger = logging.getLogger("whizrouter.inbox.nats")

#: What the ``Nats-Msg-Id`` of a replayed dead letter holds (``whizrouter.inbox.nats.dead``).
_REPLAY_MARK = "%23replay"


def journal_bucket(layout: StreamLayout) -> str:
    """The bucket's name: ``<stream>_JOURNAL``."""
    return f"{layout.stream}_JOURNAL"


def _kv_key(event_key: str) -> str:
    return base64.urlsafe_b64encode(event_key.encode()).decode().rstrip("=")


class NatsJournal:
    """One inbox's journal bucket and what this worker knows of it.

    Attributes:
        held: the journals of held events that have one, by event key.
        suspects: keys of held events that may have a journal from an earlier run.
        writing: the puts under way.
    """

    def __init__(self) -> None:
        self._kv: KeyValue | None = None
        self.held: dict[str, dict[str, JournalEntry]] = {}
        self.suspects: set[str] = set()
        self.writing: set[asyncio.Task[None]] = set()

    async def open(self, js: JetStreamContext, layout: StreamLayout) -> None:
        """Open the bucket, creating it if missing (entries live as long as dedupe keys)."""
        name = journal_bucket(layout)
        try:
            self._kv = await js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            self._kv = await js.create_key_value(
                api.KeyValueConfig(
                    bucket=name,
                    ttl=layout.dedupe_seconds,
                    replicas=layout.replicas,
                    direct=True,
                )
            )
        self.held, self.suspects = {}, set()

    def _bucket(self) -> KeyValue:
        if self._kv is None:
            raise InboxError("the NATS inbox is not open; call open() first")
        return self._kv

    def claimed(self, event: StoredEvent, msg: Msg) -> None:
        """A fetched event: remember it when an earlier run may have journaled sends."""
        if event.attempts or event.maybe_ran or _REPLAY_MARK in (msg.headers or {}).get(MSG_ID, ""):
            self.suspects.add(event.key)

    async def entries(self, event_key: str) -> dict[str, JournalEntry]:
        """The event's journal: from memory, or from the bucket for a suspect."""
        known = self.held.get(event_key)
        if known is not None:
            return dict(known)
        if event_key not in self.suspects:
            return {}
        try:
            found = await self._bucket().get(_kv_key(event_key))
        except nats.js.errors.KeyNotFoundError:
            return {}
        except nats.errors.Error as exc:
            raise InboxError(f"cannot read the send journal from NATS: {exc}") from exc
        raw = orjson.loads(found.value or b"{}")
        entries = {slot: JournalEntry(digest, mid) for slot, (digest, mid) in raw.items()}
        self.held[event_key] = entries
        return dict(entries)

    def record(self, event_key: str, slot: str, entry: JournalEntry) -> asyncio.Task[None]:
        """Start putting the event's journal with this send; the task ends once JetStream
        stored it (a later put of the same key holds this entry too)."""
        kv = self._bucket()
        entries = self.held.setdefault(event_key, {})
        entries[slot] = entry
        value = orjson.dumps({s: (e.request_hash, e.message_id) for s, e in entries.items()})
        task = asyncio.ensure_future(_put(kv, event_key, value))
        self.writing.add(task)
        task.add_done_callback(self._written)
        return task

    def _written(self, task: asyncio.Task[None]) -> None:
        self.writing.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: _put logged it

    async def written(self) -> None:
        """Wait for the puts under way (an ack must not delete what they are writing)."""
        while self.writing:
            await asyncio.wait(set(self.writing))

    def settling(self, keys: Iterable[str]) -> list[str]:
        """Held events leave this worker: forget them; the keys that have or may have a
        journal in the bucket (a suspect's earlier run may have left one unread)."""
        suspects = self.suspects
        had = [key for key in keys if self.held.pop(key, None) is not None or key in suspects]
        suspects.difference_update(had)
        return had

    async def delete(self, keys: Iterable[str]) -> None:
        """Delete the journals of acknowledged events or dropped dead letters (best effort:
        a key left behind expires with the bucket's TTL, and no run of its event follows)."""
        kv = self._bucket()
        for key in keys:
            with contextlib.suppress(nats.errors.Error):
                await kv.delete(_kv_key(key))


async def _put(kv: KeyValue, event_key: str, value: bytes) -> None:
    try:
        await kv.put(_kv_key(event_key), value)
    except nats.errors.Error as exc:
        logger.warning(
            "a send of event %s could not be written to the NATS send journal (%s); it is "
            "sent again if its event runs again after a restart",
            event_key,
            exc,
        )
        raise InboxError(f"cannot record a send in the NATS send journal: {exc}") from exc
