"""What the NATS inbox keeps on the server: the events stream and the KV buckets.

``open`` creates what is missing and checks what exists: a stream made with another partition
count is refused (changing it would break per-conversation order), and a bucket keeps the TTL
it was made with (a warning says so when this process asked for another). The dead-letter
stream is ``whizrouter.inbox.nats.dead``'s.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from whizrouter.errors import ConfigurationError, InboxError

# The inbox's logger: moving code between modules must not change what operators filter on.
logger = logging.getLogger("whizrouter.inbox.nats")


@dataclass(frozen=True, slots=True)
class StreamLayout:
    """The names and limits of one inbox's streams and buckets; see ``NatsInbox``'s arguments.

    Attributes:
        stream: the events stream; partition p is subject ``<stream>.events.<p>``.
        partitions: ordering partitions, fixed once the stream exists.
        replicas: JetStream replicas of the stream and the buckets.
        max_bytes: size bound of the events stream (-1: the account's limit).
        max_msgs: message-count bound of the events stream (-1: none).
        duplicate_window: JetStream's own dedupe window in seconds.
        dedupe_seconds: how long the ``SEEN``, ``SPARED`` and ``RUNS`` buckets keep a key.
        lease_ttl: how long the ``LEASES`` bucket keeps a lease or a heartbeat.
    """

    stream: str
    partitions: int
    replicas: int
    max_bytes: int
    max_msgs: int
    duplicate_window: float
    dedupe_seconds: float
    lease_ttl: float

    @property
    def seen_bucket(self) -> str:
        """Dedupe keys (sha256 of the event key)."""
        return f"{self.stream}_SEEN"

    @property
    def lease_bucket(self) -> str:
        """Partition leases and worker heartbeats (``whizrouter.inbox.nats.leases``)."""
        return f"{self.stream}_LEASES"

    @property
    def spared_bucket(self) -> str:
        """Deliveries that need no counting (``whizrouter.inbox.nats.spared``)."""
        return f"{self.stream}_SPARED"

    @property
    def runs_bucket(self) -> str:
        """Handler runs known to have started and not succeeded (``spared``'s module too)."""
        return f"{self.stream}_RUNS"

    def events_subject(self, conversation: str) -> str:
        """The subject, and so the partition, of a conversation's events."""
        # crc32, not hash(): every process must map a conversation to the same partition.
        return f"{self.stream}.events.{zlib.crc32(conversation.encode()) % self.partitions}"


@dataclass(frozen=True, slots=True)
class Buckets:
    """The open KV buckets of an inbox (see ``StreamLayout`` for what each holds)."""

    seen: KeyValue
    leases: KeyValue
    spared: KeyValue
    runs: KeyValue


async def ensure_events_stream(
    js: JetStreamContext, layout: StreamLayout, *, create: bool, servers: str
) -> None:
    """Create the events stream unless it exists; check the partition count it was made with.

    Args:
        js: the open JetStream context.
        layout: the inbox's layout.
        create: whether a missing stream is created (False for the inspection commands).
        servers: the servers, without secrets, for the message when the stream is missing.

    Raises:
        InboxError: the stream is missing and ``create`` is False.
        ConfigurationError: the stream exists with another partition count.
    """
    partitions = str(layout.partitions)
    try:
        info = await js.stream_info(layout.stream)
    except nats.js.errors.NotFoundError:
        if not create:
            raise InboxError(
                f"there is no NATS stream {layout.stream} on {servers}: no bot has used "
                "this inbox yet. Check stream= in the inbox URL against the bot's"
            ) from None
        info = await js.add_stream(
            api.StreamConfig(
                name=layout.stream,
                description="whizrouter events",
                subjects=[f"{layout.stream}.events.*"],
                retention=api.RetentionPolicy.WORK_QUEUE,
                storage=api.StorageType.FILE,
                # Refuse new events at the limit rather than drop acknowledged ones.
                discard=api.DiscardPolicy.NEW,
                max_bytes=layout.max_bytes,
                max_msgs=layout.max_msgs,
                num_replicas=layout.replicas,
                # Never longer than the dedupe window: a key must be forgotten in time.
                duplicate_window=min(layout.duplicate_window, layout.dedupe_seconds),
                metadata={"whizrouter.partitions": partitions},
            )
        )
    found = (info.config.metadata or {}).get("whizrouter.partitions")
    if found != partitions:
        made = f"was made with partitions={found}" if found else "was not made by whizrouter"
        raise ConfigurationError(
            f"the NATS stream {layout.stream} {made}, the URL says partitions={partitions}; "
            "changing it would break per-conversation order. Use the same value, or "
            "another stream= once the old one is drained"
        )


async def open_buckets(js: JetStreamContext, layout: StreamLayout) -> Buckets:
    """Open the inbox's KV buckets, creating those that are missing."""
    return Buckets(
        seen=await _bucket(js, layout.seen_bucket, layout.dedupe_seconds, layout.replicas),
        leases=await _bucket(js, layout.lease_bucket, layout.lease_ttl, layout.replicas),
        spared=await _bucket(js, layout.spared_bucket, layout.dedupe_seconds, layout.replicas),
        runs=await _bucket(js, layout.runs_bucket, layout.dedupe_seconds, layout.replicas),
    )


async def _bucket(js: JetStreamContext, name: str, ttl: float, replicas: int) -> KeyValue:
    try:
        kv = await js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(
            api.KeyValueConfig(bucket=name, ttl=ttl, replicas=replicas, direct=True)
        )
    status = await kv.status()
    if status.ttl is not None and abs(status.ttl - ttl) > 0.001:
        logger.warning(
            "NATS bucket %s keeps keys %.1f s, this process asked for %.1f s; the bucket wins",
            name,
            status.ttl,
            ttl,
        )
    return kv
