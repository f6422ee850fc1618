"""The worker side of the NATS inbox: fetching leased partitions and handing events out in order.

Order per conversation across workers: a conversation always maps to the same partition, and a
partition is fetched only by the worker that holds its lease (``whizrouter.inbox.nats.leases``).
A worker that takes over a partition hands nothing out until every message another worker
still holds has been settled or redelivered to it (the consumer's ack-pending count equals
what it holds itself), then hands them out oldest first: so a killed worker's events come back
in order before newer ones. The price is latency on takeover: up to ``lease_ttl`` to notice a
dead worker plus ``ack_wait`` until JetStream redelivers what it held. Workers keep held events
alive with in-progress acks, so a slow handler is never redelivered elsewhere while it runs.

``NatsInbox`` (``whizrouter.inbox.nats.inbox``) owns the connection, the streams and the wire
format; it builds one ``PartitionWorker`` per ``open`` and starts it with the first ``claim``,
so a receiver that only appends never fetches or heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, cast

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from whizrouter.errors import InboxError
from whizrouter.inbox.base import StoredEvent
from whizrouter.inbox.nats.leases import Leases, Partition, PartitionSettings

# The inbox's logger: moving code between modules must not change what operators filter on.
logger = logging.getLogger("whizrouter.inbox.nats")

#: How long a busy fetch may linger for more messages once none are left.
_BURST_LINGER = 0.05
_FETCH_BATCH = 64
_PREFETCH = 512

#: Starts a background task that the inbox keeps track of and cancels at ``close``.
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


@dataclass(slots=True)
class Held:
    """A message this process received and has not settled.

    Attributes:
        msg: the newest delivery of the message; settle through it.
        event: the decoded event.
        partition: the partition it was fetched from.
        claimed: whether ``claim`` handed it out already.
    """

    msg: Msg
    event: StoredEvent
    partition: int
    claimed: bool = False


class PartitionWorker:
    """Fetches the partitions this worker leases and hands their events out in order.

    Args:
        settings: the inbox's partition settings.
        worker_id: this process' id in the lease bucket.
        js: returns the open JetStream context (raises ``InboxError`` once closed).
        leases: returns the open lease bucket.
        decode: turns a fetched message into the event it carries.
        spawn: starts a background task the inbox cancels at ``close``.
    """

    def __init__(
        self,
        settings: PartitionSettings,
        *,
        worker_id: str,
        js: Callable[[], JetStreamContext],
        leases: Callable[[], KeyValue],
        decode: Callable[[Msg], Awaitable[StoredEvent]],
        spawn: Spawn,
    ) -> None:
        self._stream = settings.stream
        self._ack_wait = settings.ack_wait
        self.description = settings.description
        self.worker_id = worker_id
        self._get_js = js
        self._decode = decode
        self._spawn = spawn
        self._leases = Leases(
            settings,
            worker_id=worker_id,
            js=js,
            bucket=leases,
            taken=self._start_fetching,
            leaving=self._stop_fetching,
        )
        #: Seconds between heartbeats (and lease renewals).
        self.tick = settings.lease_ttl / 4
        self._fetch_timeout = min(2.0, settings.lease_ttl / 4)
        #: Seconds within which every loop ends once ``stop`` was called.
        self.stop_within = 2 * self._fetch_timeout + self.tick
        #: Records deliveries handed back unstarted (the inbox's spared count), if set.
        self.spare: Callable[[list[int]], Awaitable[None]] | None = None
        #: Messages received and not settled, by stream sequence.
        self.held: dict[int, Held] = {}
        self._ready: list[int] = []  # a heap of seqs: each claim hands out the oldest
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_keepalive = time.monotonic()

    @property
    def _js(self) -> JetStreamContext:
        return self._get_js()

    @property
    def owned_partitions(self) -> tuple[int, ...]:
        """The partitions this process fetches right now (empty until ``claim`` is called)."""
        return tuple(sorted(self._leases.owned))

    # -- handing out -----------------------------------------------------------------------

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Wait for events of partitions this worker leases; return up to ``limit``, oldest first.

        The first call starts heartbeats, leases and fetches.
        """
        if self._worker is None:
            self._worker = self._spawn(self._work())
        while True:
            while not self._ready:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch: list[StoredEvent] = []
            while self._ready and len(batch) < limit:
                held = self.held.get(heapq.heappop(self._ready))
                if held is not None and not held.claimed:
                    held.claimed = True
                    batch.append(held.event)
            if len(self._ready) < _PREFETCH:
                self._space.set()
            if batch:
                return batch

    def _make_ready(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            heapq.heappush(self._ready, seq)
        self._wakeup.set()

    # -- stopping --------------------------------------------------------------------------

    def stop(self) -> None:
        """Tell every loop to end (the inbox cancels their tasks right after)."""
        # Flags as well as cancellation: asyncio.wait_for in Python 3.11 can swallow a
        # cancellation that races with a message arriving, and a loop must still end.
        self._stopping = True
        for part in self._leases.owned.values():
            part.active = False

    def wake(self) -> None:
        """Wake a ``claim`` that waits for events."""
        self._wakeup.set()

    async def hand_back(self) -> None:
        """Nak every unsettled event, oldest first, and release leases and the heartbeat.

        Nak'd events (ascending, so they come back in order) go to the next owner now, not
        after ``ack_wait``.
        """
        for part in list(self._leases.owned.values()):
            with contextlib.suppress(nats.errors.Error):
                await part.sub.unsubscribe()
        for seq in sorted(self.held):
            with contextlib.suppress(nats.errors.Error):
                await self.held[seq].msg.nak()
        self.held.clear()
        self._ready.clear()
        if self._worker is not None:
            await self._leases.release_all()
        self._leases.owned.clear()

    # -- the worker loop: leases and keep-alives -------------------------------------------

    async def _work(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._leases.balance()
                if started - self._last_keepalive >= self._ack_wait / 3:
                    self._last_keepalive = started
                    for held in list(self.held.values()):
                        await held.msg.in_progress()
            except (nats.errors.Error, InboxError, OSError) as exc:
                logger.warning("NATS inbox %s: worker step failed: %s", self.description, exc)
            except Exception:  # a bug must not silently stop heartbeats and leases
                logger.exception("NATS inbox %s: worker step failed", self.description)
            await asyncio.sleep(max(0.0, self.tick - (time.monotonic() - started)))

    def _start_fetching(self, part: Partition) -> None:
        part.task = self._spawn(self._fetch(part))

    async def _stop_fetching(self, part: Partition) -> None:
        """A partition is given up: end its fetch loop and hand back what was not claimed."""
        part.active = False
        if part.task is not None:
            await asyncio.gather(part.task, return_exceptions=True)
        with contextlib.suppress(nats.errors.Error):
            await part.sub.unsubscribe()
        # Claimed events stay ours until settled; the next owner waits for them.
        unclaimed = sorted(
            seq for seq, h in self.held.items() if h.partition == part.index and not h.claimed
        )
        if unclaimed and self.spare is not None:
            # Handed back unstarted: the next delivery must not look like a crash's.
            with contextlib.suppress(Exception):
                await self.spare(unclaimed)
        for seq in unclaimed:
            await self.held.pop(seq).msg.nak()
        if unclaimed:
            self._ready = [s for s in self._ready if s in self.held]
            heapq.heapify(self._ready)

    # -- fetching and takeover -------------------------------------------------------------

    async def _fetch(self, part: Partition) -> None:
        busy = False
        while part.active and not self._stopping:
            if not self._leases.fresh(part, self._fetch_timeout):
                await asyncio.sleep(self.tick)  # the worker renews the lease or gives it up
                continue
            if not part.gated and len(self._ready) >= _PREFETCH:
                self._space.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._space.wait(), self._fetch_timeout)
                continue
            try:
                # A lingering batch fetch waits for a full batch: linger for one message
                # when idle, and take whatever is there (briefly) while busy.
                if busy:
                    msgs = await part.sub.fetch(_FETCH_BATCH, timeout=_BURST_LINGER)
                else:
                    msgs = await part.sub.fetch(1, timeout=self._fetch_timeout)
            except TimeoutError:
                msgs = []
            except nats.errors.Error as exc:
                logger.warning(
                    "NATS inbox %s: fetch from partition %d failed: %s",
                    self.description,
                    part.index,
                    exc,
                )
                await asyncio.sleep(self.tick)
                continue
            except Exception:  # a bug must not silently stop this partition
                logger.exception("NATS inbox %s: fetch loop failed", self.description)
                await asyncio.sleep(self.tick)
                continue
            busy = bool(msgs)
            for msg in msgs:
                try:
                    await self._receive(part, msg)
                except Exception:  # a bug or a NATS error must not end this partition's loop
                    logger.exception(
                        "NATS inbox %s: could not take event %d; JetStream redelivers it",
                        self.description,
                        msg.metadata.sequence.stream,
                    )
                    with contextlib.suppress(Exception):
                        await msg.nak()
            if part.gated:
                await self._open_gate(part)

    async def _receive(self, part: Partition, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        held = self.held.get(seq)
        if held is not None:
            held.msg = msg  # redelivered while still ours: settle through the newest delivery
            return
        # Only this partition's fetch loop receives its messages: nothing else adds ``seq``
        # while the decoding waits.
        self.held[seq] = Held(msg=msg, event=await self._decode(msg), partition=part.index)
        if part.gated:
            part.buffer.append(seq)
        else:
            self._make_ready([seq])

    async def _open_gate(self, part: Partition) -> None:
        # Only this partition's fetch loop adds to what we hold of it, so counting after the
        # reply can only undercount: the gate never opens while another worker holds events.
        try:
            info = await self._js.consumer_info(self._stream, f"p{part.index}")
        except nats.errors.Error:
            return
        mine = sum(1 for h in self.held.values() if h.partition == part.index)
        if (cast(api.ConsumerInfo, info).num_ack_pending or 0) > mine:
            return
        part.gated = False
        self._make_ready(seq for seq in part.buffer if seq in self.held)
        part.buffer.clear()
