"""Storing events in the NATS inbox: the dedupe check, then a publish per event.

Provider redeliveries are dropped by key for the whole dedupe window (days), far longer than
JetStream's own duplicate window (minutes): the ``SEEN`` bucket keeps the sha256 of each
stored key with the time it was stored. Events are published one after the other in their
order, so seqs follow arrival.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from whizrouter.errors import InboxError, InboxFullError
from whizrouter.inbox.base import RawEvent
from whizrouter.inbox.nats.backlog import Backlog
from whizrouter.inbox.nats.connection import Connection
from whizrouter.inbox.nats.messages import event_headers
from whizrouter.inbox.nats.streams import StreamLayout

#: JetStream API error codes for a stream refusing writes at its limits (discard new).
_FULL_CODES = {10047, 10077, 10078}

_Fresh = list[tuple[RawEvent, str, dict[str, str]]]


class Appender:
    """Stores events for ``NatsInbox.append``.

    Args:
        connection: the inbox's connection.
        layout: the inbox's streams and buckets.
        seen: returns the open ``SEEN`` bucket.
        backlog: the inbox's backlog, told how many events were stored.
        max_backlog: unsettled events above which ``append`` refuses with ``InboxFullError``.
        description: the inbox's description, for errors.
    """

    def __init__(
        self,
        connection: Connection,
        layout: StreamLayout,
        *,
        seen: Callable[[], KeyValue],
        backlog: Backlog,
        max_backlog: int,
        description: str,
    ) -> None:
        self._connection = connection
        self._layout = layout
        self._seen = seen
        self._backlog = backlog
        self._max_backlog = max_backlog
        self._description = description

    async def append(self, events: Sequence[RawEvent]) -> int:
        """Publish new events and wait for JetStream to store them; see ``NatsInbox.append``."""
        js = self._connection.js()
        if not self._connection.connected:
            # Publishing now would wait out its timeout while the request hangs: refuse at
            # once, and the provider resends after the 503's Retry-After.
            raise InboxError(
                f"the NATS inbox {self._description} is disconnected and reconnecting; "
                "nothing was stored. Check that the NATS server is up"
            )
        backlog = self._backlog.value()
        # An empty inbox takes any callback, however many events: none is refused forever.
        if backlog and backlog + len(events) > self._max_backlog:
            raise InboxFullError(
                f"the NATS inbox holds about {self._backlog.value()} unsettled events (bound "
                f"{self._max_backlog}); the provider will retry, or raise max_backlog"
            )
        batch: list[tuple[RawEvent, str]] = []
        for event in events:
            digest = hashlib.sha256(event.key.encode()).hexdigest()
            if all(digest != d for _, d in batch):
                batch.append((event, digest))
        seen = await asyncio.gather(*(self._was_seen(d) for _, d in batch), return_exceptions=True)
        fresh: _Fresh = []
        for (event, digest), known in zip(batch, seen, strict=True):
            if isinstance(known, BaseException):
                raise InboxError(f"cannot check dedupe keys in NATS: {known}") from known
            if not known:
                fresh.append((event, digest, event_headers(event)))
        self._check_sizes(fresh)
        stored: list[str] = []
        new = 0
        failure: BaseException | None = None
        for event, digest, headers in fresh:
            subject = self._layout.events_subject(event.conversation)
            try:
                ack = await js.publish(subject, event.body, headers=headers)
            except (nats.errors.Error, OSError) as exc:
                failure = exc
                break
            stored.append(digest)
            new += 0 if ack.duplicate else 1
        self._backlog.changed(new)
        now = repr(time.time()).encode()
        remembered = await asyncio.gather(
            *(self._seen().put(d, now) for d in stored), return_exceptions=True
        )
        failure = failure or next((r for r in remembered if isinstance(r, BaseException)), None)
        if failure is None:
            return new
        if isinstance(failure, nats.js.errors.APIError) and (
            failure.err_code in _FULL_CODES or "maximum" in (failure.description or "")
        ):
            raise InboxFullError(
                f"the NATS stream {self._layout.stream} is at its limits ({failure.description}); "
                "the provider will retry, or raise max_bytes/max_msgs"
            ) from failure
        raise InboxError(f"NATS did not store the events: {failure!r}") from failure

    def _check_sizes(self, fresh: _Fresh) -> None:
        # The server counts headers too and drops the connection past its limit.
        limit = self._connection.max_payload
        for event, _, headers in fresh:
            size = len(event.body) + 12 + sum(len(k) + len(v) + 4 for k, v in headers.items())
            if size > limit:
                raise InboxError(
                    f"event {event.key!r} takes {size} bytes, over the NATS server's "
                    f"max_payload of {limit}; raise max_payload in the server configuration"
                )

    async def _was_seen(self, digest: str) -> bool:
        try:
            entry = await self._seen().get(digest)
        except nats.js.errors.KeyNotFoundError:
            return False
        # The bucket drops keys only about a second late; the stored time is exact.
        try:
            return time.time() - float(entry.value or b"0") < self._layout.dedupe_seconds
        except ValueError:
            return True
