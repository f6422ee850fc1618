"""The acknowledgement path: settling claimed events, batching their acks, replay slots.

Every claimed event ends in ``Acks.settle``: it leaves the count of unsettled events (making
room for the claim loop), and a handled or unwanted one joins the next ack batch. One flusher
task acks a batch in one inbox call at a time, so a busy dispatcher pays one task switch per
batch, not an inbox call per event. With a durable inbox, ``ReplaySlots`` bounds the events
started whose ack is not committed yet: those are what a crash replays.

An event whose handler changed its conversation's state settles with that write
(``settle_with_state``): the flusher commits a batch's writes in the same inbox call as its
acks (``Inbox.ack_with_state``), and ``StateOverlay`` shows the writes to later events of the
conversation until then.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from whizrouter.dispatcher.state import STOPPED, Lifecycle
from whizrouter.dispatcher.state_overlay import StateOverlay
from whizrouter.errors import InboxError
from whizrouter.inbox.base import Inbox
from whizrouter.inbox.stored_state import StateWrite
from whizrouter.log_throttle import LogThrottle

log = logging.getLogger("whizrouter.dispatcher")


def _nothing() -> None:
    """``ReplaySlots.on_free`` until the lanes connect theirs."""


class ReplaySlots:
    """At most ``limit`` started events without a committed ack (durable inbox only).

    A crash replays every event that was started and whose ack was not committed yet; this
    bounds those to ``limit`` (the concurrency), as if each worker waited for its own ack,
    while a worker whose handler returned at once goes on to the next event without waiting
    for the flusher (one task switch less per event).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._taken = 0
        # Workers waiting for a slot, first come first served.
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: Called when slots come free, so that lanes ready meanwhile get a worker.
        self.on_free: Callable[[], None] = _nothing

    def left(self) -> bool:
        """Whether a slot is free now."""
        return self._taken < self._limit

    async def reserve(self) -> None:
        """Take a slot before an event starts; wait for one if none is free."""
        if self._taken < self._limit and not self._waiters:
            self._taken += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the slot is handed over with the result
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()
            raise

    def release(self, count: int = 1) -> None:
        """Give back ``count`` slots: their acks are committed, or their events left."""
        self._taken -= count
        waiters = self._waiters
        while waiters and self._taken < self._limit:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._taken += 1
        self.on_free()


class Acks:
    """Settles claimed events and acks the handled ones in batches.

    Args:
        inbox: where the acks go.
        life: the dispatcher's state; the flusher ends once the workers have.
        slots: the replay slots of a durable inbox, released as acks commit; None otherwise.
        overlay: where settled state writes wait for their commit (a fresh one if None).
    """

    def __init__(
        self,
        inbox: Inbox,
        life: Lifecycle,
        slots: ReplaySlots | None,
        overlay: StateOverlay | None = None,
    ) -> None:
        self._inbox = inbox
        self.overlay = overlay or StateOverlay(inbox)
        self._pending_writes = self.overlay.pending_writes
        # State writes of the events in ``_batch``, in settlement order.
        self._writes: list[StateWrite] = []
        self._life = life
        self._slots = slots
        #: Events claimed from the inbox and not yet settled.
        self.unsettled = 0
        #: Ack batches the inbox failed to settle.
        self.settle_failures = 0
        self._failure_log = LogThrottle()
        # Plain flags beside the events, read for every settled event: an Event's is_set is
        # a Python call (two through anyio's), several per event on the hot path. asyncio
        # events, one made per wait: an anyio.Event costs about 3 us to build (a backend
        # look-up), an asyncio one a tenth of that. The dispatcher is asyncio-only.
        self._room = asyncio.Event()
        self._room_wanted = False  # the claim loop waits for room
        self._batch: list[int] = []
        self._wakeup = asyncio.Event()
        self._flusher_idle = False  # the flusher waits for acks
        self._flusher_done = asyncio.Event()
        self._idle = asyncio.Event()

    def claimed(self, count: int) -> None:
        """``count`` more events were claimed from the inbox."""
        self.unsettled += count

    async def wait_for_room(self, limit: int) -> None:
        """Wait until fewer than ``limit`` events are unsettled."""
        while self.unsettled >= limit:
            self._room = asyncio.Event()
            self._room_wanted = True
            await self._room.wait()

    def settle(self, seq: int, *, ack: bool) -> None:
        """Count the event out; ``ack`` it in the flusher's next batch (else it went dead,
        and the dead letter settled it).

        Not a coroutine: every handled event passes here, and the flusher acks a batch in one
        inbox call (one task switch per batch instead of an ack call per event).
        """
        self.unsettled -= 1
        if self._room_wanted:
            self._room_wanted = False
            self._room.set()
        if ack:
            self._batch.append(seq)
            if self._flusher_idle:
                self._flusher_idle = False
                self._wakeup.set()
            return  # the flusher releases the replay slot and checks for idleness
        if self._slots is not None:
            self._slots.release()
        self._check_idle()

    def settle_with_state(self, seq: int, write: StateWrite) -> None:
        """``settle(seq, ack=True)`` for an event whose handler changed its conversation's
        state: the write commits with the ack, and later events see it meanwhile."""
        self._pending_writes[write.conversation] = write  # later events read it from there
        self._writes.append(write)
        self.settle(seq, ack=True)

    def workers_ended(self) -> None:
        """Let the flusher ack what is left and end."""
        self._wakeup.set()

    async def run_flusher(self) -> None:
        """Ack batches until the workers have ended and every ack is flushed."""
        try:
            await self._flush_until_done()
        finally:
            self._flusher_done.set()

    async def wait_flushed(self) -> None:
        """Wait until the flusher has ended."""
        await self._flusher_done.wait()

    async def _flush_until_done(self) -> None:
        # One ack call at a time: acks that arrive meanwhile form the next batch.
        while True:
            if not self._batch:
                if self._life.state is STOPPED:
                    return
                self._wakeup = asyncio.Event()
                self._flusher_idle = True
                await self._wakeup.wait()
                continue
            batch, self._batch = self._batch, []
            # Taken only when there are some: ``_writes`` itself goes on collecting the next
            # batch's while this one is acked.
            writes: Sequence[StateWrite] = ()
            if self._writes:
                writes, self._writes = self._writes, []
            try:
                if writes:
                    await self._inbox.ack_with_state(batch, writes)
                else:
                    await self._inbox.ack(batch)
            except Exception as exc:
                # Unsettled means replayed after a restart: a duplicate, never a loss (and
                # the replay starts from the state the inbox still holds).
                self._log_settle_failure(exc, len(batch))
                for write in writes:
                    write.failed = True
            finally:
                if writes:
                    self.overlay.committed(writes)
                if self._slots is not None:
                    self._slots.release(len(batch))
            self._check_idle()

    def _log_settle_failure(self, exc: Exception, events: int) -> None:
        """Say a settle failed: once every 10 s (while the disk is full, every batch fails
        alike), the traceback only for what is not an inbox error, which explains itself."""
        self.settle_failures += 1
        if not self._failure_log.due():
            log.debug("could not settle %d handled events in the inbox: %s", events, exc)
            return
        log.error(
            "could not settle %d handled events in the inbox (%d failed settles so far); they "
            "are handled again after a restart: %s",
            events,
            self.settle_failures,
            exc,
            exc_info=None if isinstance(exc, InboxError) else exc,
        )

    async def wait_idle(self) -> None:
        """Wait until every event stored so far has been settled."""
        while self.unsettled or self._inbox.backlog():
            if self._idle.is_set():
                self._idle = asyncio.Event()
            await self._idle.wait()

    def _check_idle(self) -> None:
        if self.unsettled == 0 and self._inbox.backlog() == 0:
            self._idle.set()
