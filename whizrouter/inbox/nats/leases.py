"""Which NATS worker fetches which partition: leases, heartbeats and the balance between workers.

A partition is fetched only by the worker that holds its lease, so a conversation (always
in the same partition) is handled by one worker at a time. Workers heartbeat, count each
other, and each aims at ``ceil(partitions / workers)`` leases, giving up the extra ones when a
worker joins and taking free ones when a worker's leases expire. Rendezvous hashing gives
each worker its own preferred spread of partitions, so they rarely race for the same one.

What lives in the lease bucket (``S_LEASES``, TTL = ``lease_ttl``): ``p.<p>`` = the worker id
fetching partition p, ``w.<worker>`` = that worker's heartbeat. A worker id is
``<hostname>-<pid>-<random>``. Fetching a partition and handing its events out is
``whizrouter.inbox.nats.partitions``'s.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

# The inbox's logger: moving code between modules must not change what operators filter on.
logger = logging.getLogger("whizrouter.inbox.nats")


def new_worker_id() -> str:
    """A fresh worker id, ``<hostname>-<pid>-<random>``: the value of this worker's leases."""
    return "-".join(
        (
            re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40],
            str(os.getpid()),
            secrets.token_hex(4),
        )
    )


@dataclass(frozen=True, slots=True)
class PartitionSettings:
    """What the partition worker and its leases need to know of the inbox's configuration.

    Attributes:
        stream: the events stream; partition p is subject ``<stream>.events.<p>`` and
            consumer ``p<p>``.
        lease_bucket: the KV bucket of leases and heartbeats.
        partitions: how many partitions there are.
        ack_wait: seconds after which JetStream redelivers an event whose worker went silent.
        lease_ttl: seconds after which a silent worker's partitions may be taken over.
        max_ack_pending: unsettled events one partition may have out at once.
        description: the inbox description, for log lines.
    """

    stream: str
    lease_bucket: str
    partitions: int
    ack_wait: float
    lease_ttl: float
    max_ack_pending: int
    description: str


@dataclass(slots=True, eq=False)
class Partition:
    """A partition this worker holds the lease of, and the state of its fetching."""

    index: int
    revision: int
    renewed_at: float  # monotonic time at which the last successful lease write was sent
    sub: JetStreamContext.PullSubscription
    gated: bool = True
    active: bool = True
    buffer: list[int] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class Leases:
    """This worker's partition leases; see the module docstring.

    Args:
        settings: the inbox's partition settings.
        worker_id: this process' id in the lease bucket.
        js: returns the open JetStream context (raises ``InboxError`` once closed).
        bucket: returns the open lease bucket.
        taken: called with a partition just leased and subscribed to (to start fetching it).
        leaving: awaited with a partition being given up, once it is no longer owned, before
            its lease is released (to stop fetching it and hand back what it holds).

    Attributes:
        owned: the partitions this worker holds, by index.
    """

    def __init__(
        self,
        settings: PartitionSettings,
        *,
        worker_id: str,
        js: Callable[[], JetStreamContext],
        bucket: Callable[[], KeyValue],
        taken: Callable[[Partition], None],
        leaving: Callable[[Partition], Awaitable[None]],
    ) -> None:
        self._settings = settings
        self._stream = settings.stream
        self._bucket_name = settings.lease_bucket
        self._lease_ttl = settings.lease_ttl
        self._description = settings.description
        self._worker_id = worker_id
        self._js = js
        self._bucket = bucket
        self._taken = taken
        self._leaving = leaving
        self.owned: dict[int, Partition] = {}

    def fresh(self, part: Partition, ahead: float) -> bool:
        """Whether the lease of ``part`` is surely alive ``ahead`` seconds from now."""
        # The server's TTL counts from when it stored the write, which is after we sent it.
        return time.monotonic() + ahead < part.renewed_at + self._lease_ttl * 0.9

    async def balance(self) -> None:
        """Heartbeat, renew every lease, then give up extra partitions or take free ones."""
        kv, bucket = self._bucket(), self._bucket_name
        await kv.put(f"w.{self._worker_id}", f"{socket.gethostname()} pid {os.getpid()}".encode())
        renewed = await asyncio.gather(
            *(self._renew(p) for p in list(self.owned.values())), return_exceptions=True
        )
        for failure in renewed:
            if isinstance(failure, BaseException):
                raise failure
        info = await self._js().stream_info(f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.>")
        subjects = info.state.subjects or {}
        workers = sum(1 for s in subjects if s.startswith(f"$KV.{bucket}.w."))
        taken = {int(s.rsplit(".", 1)[1]) for s in subjects if s.startswith(f"$KV.{bucket}.p.")}
        target = math.ceil(self._settings.partitions / max(1, workers))
        owned = sorted(self.owned.values(), key=lambda p: self._score(p.index))
        if len(owned) > target:
            extra = owned[: len(owned) - target]  # the ones this worker prefers least
            await asyncio.gather(*(self._give_up(p, lost=False) for p in extra))
            return
        free = sorted(
            (p for p in range(self._settings.partitions) if p not in taken and p not in self.owned),
            key=self._score,
            reverse=True,
        )
        for partition in free:
            if len(self.owned) >= target:
                break
            await self._acquire(partition)

    async def release_all(self) -> None:
        """Release every lease and the heartbeat, so others take over at once; forget them."""
        for part in list(self.owned.values()):
            await self._release(part)
        await self._js().purge_stream(
            f"KV_{self._bucket_name}", subject=f"$KV.{self._bucket_name}.w.{self._worker_id}"
        )
        self.owned.clear()

    def _score(self, partition: int) -> int:
        # Rendezvous hashing: each worker prefers its own spread of partitions.
        digest = hashlib.blake2b(f"{self._worker_id}/{partition}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big")

    async def _acquire(self, index: int) -> None:
        sent = time.monotonic()
        try:
            revision = await self._bucket().create(f"p.{index}", self._worker_id.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            return  # another worker was faster
        consumer = f"p{index}"
        js = self._js()
        try:
            await js.add_consumer(
                self._stream,
                api.ConsumerConfig(
                    name=consumer,
                    durable_name=consumer,
                    filter_subject=f"{self._stream}.events.{index}",
                    ack_policy=api.AckPolicy.EXPLICIT,
                    ack_wait=self._settings.ack_wait,
                    # Unlimited: past a server-side limit a work-queue event would sit
                    # unsettled and unseen; the dispatcher dead-letters by attempts instead.
                    max_deliver=-1,
                    max_ack_pending=self._settings.max_ack_pending,
                ),
            )
            sub = await js.pull_subscribe_bind(durable=consumer, stream=self._stream)
        except nats.errors.Error:
            await js.purge_stream(
                f"KV_{self._bucket_name}", subject=f"$KV.{self._bucket_name}.p.{index}"
            )
            raise
        part = Partition(index=index, revision=revision, renewed_at=sent, sub=sub)
        self.owned[index] = part
        self._taken(part)
        logger.info(
            "NATS inbox %s: worker %s took partition %d",
            self._description,
            self._worker_id,
            index,
        )

    async def _renew(self, part: Partition) -> None:
        sent = time.monotonic()
        try:
            part.revision = await self._bucket().update(
                f"p.{part.index}", self._worker_id.encode(), last=part.revision
            )
            part.renewed_at = sent
        except nats.js.errors.KeyWrongLastSequenceError:
            logger.warning(
                "NATS inbox %s: lost the lease of partition %d", self._description, part.index
            )
            await self._give_up(part, lost=True)
        except nats.errors.Error:
            if not self.fresh(part, 0.0):
                await self._give_up(part, lost=True)
            raise

    async def _give_up(self, part: Partition, *, lost: bool) -> None:
        self.owned.pop(part.index, None)
        await self._leaving(part)
        if not lost:
            await self._release(part)
            logger.info(
                "NATS inbox %s: worker %s gave partition %d up",
                self._description,
                self._worker_id,
                part.index,
            )

    async def _release(self, part: Partition) -> None:
        # A purge leaves no delete marker, so others see the partition free at once; only
        # while our lease is surely alive, else we could purge the next owner's lease.
        if self.fresh(part, 0.0):
            await self._js().purge_stream(
                f"KV_{self._bucket_name}", subject=f"$KV.{self._bucket_name}.p.{part.index}"
            )
