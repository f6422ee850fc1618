"""The parts of a NATS inbox that live from one ``open`` to its ``close``, built together.

Each ``open`` builds them afresh (an inbox may be opened again after ``close``): the loops,
the partition worker, the reports, the backlog, the appender and the settler. The connection,
the dead-letter stream, the send journal and the state bucket live as long as the inbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg

from whizrouter.inbox.base import StoredEvent
from whizrouter.inbox.nats.append import Appender
from whizrouter.inbox.nats.backlog import Backlog
from whizrouter.inbox.nats.config import InboxConfig
from whizrouter.inbox.nats.connection import Connection
from whizrouter.inbox.nats.dead import DeadLetterStream
from whizrouter.inbox.nats.loops import Loops
from whizrouter.inbox.nats.partitions import PartitionWorker
from whizrouter.inbox.nats.reports import Reports
from whizrouter.inbox.nats.settling import Settler
from whizrouter.inbox.nats.spared import add_one
from whizrouter.inbox.nats.streams import Buckets


@dataclass(frozen=True, slots=True)
class OpenParts:
    """What one ``open`` of a ``NatsInbox`` runs on; see ``build_open_parts``."""

    loops: Loops
    fetcher: PartitionWorker
    reports: Reports
    backlog: Backlog
    appender: Appender
    settler: Settler


def build_open_parts(
    config: InboxConfig,
    connection: Connection,
    dead: DeadLetterStream,
    *,
    worker_id: str,
    buckets: Callable[[], Buckets],
    decode: Callable[[Msg], Awaitable[StoredEvent]],
) -> OpenParts:
    """Build the parts of one ``open``.

    Args:
        config: the inbox's settings.
        connection: the inbox's connection.
        dead: the inbox's dead-letter stream.
        worker_id: this process' id in the lease bucket.
        buckets: returns the open KV buckets (raises ``InboxError`` before ``open``).
        decode: turns a fetched message into its event (the inbox's, which knows the journal).
    """
    loops = Loops()
    fetcher = PartitionWorker(
        config.partition_settings(),
        worker_id=worker_id,
        js=connection.js,
        leases=lambda: buckets().leases,
        decode=decode,
        spawn=loops.spawn,
    )
    fetcher.spare = lambda seqs: add_one(buckets().spared, seqs)
    reports = Reports(
        connection, config.layout, dead_stream=dead.name, worker_id=worker_id, fetcher=fetcher
    )
    backlog = Backlog(reports.count_events)
    appender = Appender(
        connection,
        config.layout,
        seen=lambda: buckets().seen,
        backlog=backlog,
        max_backlog=config.max_backlog,
        description=config.description,
    )
    settler = Settler(
        fetcher,
        connection,
        dead,
        buckets=buckets,
        backlog=backlog,
        ack_wait=config.ack_wait,
        description=config.description,
    )
    return OpenParts(loops, fetcher, reports, backlog, appender, settler)
