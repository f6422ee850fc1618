"""A NATS inbox's configuration: its arguments, checked once, grouped for the parts built on them.

``NatsInbox`` takes its settings as keyword arguments (``from_url`` reads them from the URL);
``inbox_config`` refuses those it cannot work with and returns an ``InboxConfig``, from which
the inbox builds its connection, streams, appender and partition worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from whizrouter.errors import ConfigurationError
from whizrouter.inbox.nats.leases import PartitionSettings
from whizrouter.inbox.nats.streams import StreamLayout
from whizrouter.inbox.nats.url import check_settings, redact


@dataclass(frozen=True, slots=True)
class InboxConfig:
    """The checked settings of one ``NatsInbox``; see its arguments.

    Attributes:
        servers: the server URLs, credentials included (never log them: see ``description``).
        layout: the names and limits of the streams and buckets.
        ack_wait: seconds after which JetStream redelivers an event whose worker went silent.
        max_ack_pending: unsettled events one partition may have out at once.
        max_backlog: unsettled events above which ``append`` refuses with ``InboxFullError``.
        description: the servers without credentials and the stream, for logs and errors.
    """

    servers: list[str]
    layout: StreamLayout
    ack_wait: float
    max_ack_pending: int
    max_backlog: int
    description: str

    def partition_settings(self) -> PartitionSettings:
        """What the partition worker and its leases need of these settings."""
        return PartitionSettings(
            stream=self.layout.stream,
            lease_bucket=self.layout.lease_bucket,
            partitions=self.layout.partitions,
            ack_wait=self.ack_wait,
            lease_ttl=self.layout.lease_ttl,
            max_ack_pending=self.max_ack_pending,
            description=self.description,
        )


def inbox_config(
    servers: Sequence[str],
    *,
    stream: str,
    partitions: int,
    replicas: int,
    max_bytes: int,
    max_msgs: int,
    duplicate_window: float,
    ack_wait: float,
    lease_ttl: float,
    max_ack_pending: int,
    max_backlog: int,
    dedupe_seconds: float,
) -> InboxConfig:
    """Check a ``NatsInbox``'s arguments and group them.

    Raises:
        ConfigurationError: a setting is out of bounds, or a server URL is malformed.
    """
    check_settings(
        servers=servers,
        stream=stream,
        partitions=partitions,
        ack_wait=ack_wait,
        lease_ttl=lease_ttl,
        duplicate_window=duplicate_window,
        dedupe_seconds=dedupe_seconds,
    )
    servers = list(servers)
    try:
        description = ",".join(redact(s) for s in servers) + f"?stream={stream}"
    except ValueError as exc:  # a port that is not a number
        raise ConfigurationError(f"WHIZROUTER_INBOX: malformed NATS server URL: {exc}") from None
    layout = StreamLayout(
        stream=stream,
        partitions=partitions,
        replicas=replicas,
        max_bytes=max_bytes,
        max_msgs=max_msgs,
        duplicate_window=duplicate_window,
        dedupe_seconds=dedupe_seconds,
        lease_ttl=lease_ttl,
    )
    return InboxConfig(servers, layout, ack_wait, max_ack_pending, max_backlog, description)
