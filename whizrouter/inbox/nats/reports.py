"""What the NATS inbox reports without changing anything: counts, the oldest wait, health.

Counts come from the server when asked (``whizrouter inbox stats``, a ``/metrics`` scrape, the
backlog's count once a second), so they cover every receiver and worker; ``health`` is what
this process knows, without I/O.
"""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors

from whizrouter.errors import InboxError
from whizrouter.inbox.nats.connection import Connection
from whizrouter.inbox.nats.partitions import PartitionWorker
from whizrouter.inbox.nats.streams import StreamLayout


class Reports:
    """The read-only reports of one NATS inbox, from one ``open`` to its ``close``.

    Args:
        connection: the inbox's connection; a report before ``open`` raises ``InboxError``.
        layout: the inbox's streams and buckets.
        dead_stream: the name of the dead-letter stream.
        worker_id: this process' id in the lease bucket.
        fetcher: this process' partition worker (idle in a receiver).
    """

    def __init__(
        self,
        connection: Connection,
        layout: StreamLayout,
        *,
        dead_stream: str,
        worker_id: str,
        fetcher: PartitionWorker,
    ) -> None:
        self._connection = connection
        self._layout = layout
        self._dead_stream = dead_stream
        self._worker_id = worker_id
        self._fetcher = fetcher

    async def count_events(self) -> int:
        """How many events the stream holds: the unsettled ones (the backlog's count)."""
        info = await self._connection.js().stream_info(self._layout.stream)
        return int(info.state.messages)

    async def stats(self) -> dict[str, int]:
        """Counts from the server: ``pending`` (stored, unsettled), ``dead``, ``seen``."""
        js = self._connection.js()
        try:
            events, dead, seen = await asyncio.gather(
                js.stream_info(self._layout.stream),
                js.stream_info(self._dead_stream),
                js.stream_info(f"KV_{self._layout.seen_bucket}"),
            )
        except nats.errors.Error as exc:
            raise InboxError(f"cannot read counts from NATS: {exc}") from exc
        return {
            "pending": events.state.messages,
            "dead": dead.state.messages,
            "seen": seen.state.messages,
        }

    async def oldest_waiting(self) -> float | None:
        """When the oldest unsettled event was stored (work-queue retention keeps only those,
        so the stream's first message's time); see ``NatsInbox.oldest_waiting``."""
        info = await self._connection.js().stream_info(self._layout.stream)
        if not info.state.messages:
            return None
        try:
            first = await self._connection.js().get_msg(
                self._layout.stream, seq=info.state.first_seq, next=True
            )
        except nats.js.errors.NotFoundError:
            return None  # settled between the two requests
        return first.time.timestamp() if first.time is not None else None

    def health(self) -> dict[str, object]:
        """``connected``, ``worker_id``, ``owned_partitions`` and ``held``; see
        ``NatsInbox.health``."""
        return {
            "connected": self._connection.connected,
            "worker_id": self._worker_id,
            "owned_partitions": list(self._fetcher.owned_partitions),
            "held": len(self._fetcher.held),
        }
