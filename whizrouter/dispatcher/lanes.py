"""The lanes: one queue per conversation, a ready queue of lanes, and the workers.

Claimed events wait in their conversation's lane. A lane is on the ready queue or in exactly
one worker's hands, never both, so events of a conversation run one after another in
arrival order while different conversations run concurrently, up to the number of workers.
A worker runs at most ``LANE_TURN`` events of a lane before it puts the lane back at the end
of the ready queue, so one chatty conversation cannot starve the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import anyio

from whizrouter.dispatcher.acks import ReplaySlots
from whizrouter.dispatcher.state import DRAINING, LEAVING, RUNNING, Lifecycle
from whizrouter.inbox.base import StoredEvent

#: Events a worker handles from one lane before it lets other lanes go first.
LANE_TURN = 8

#: What a worker does with an event: the awaitable that settles it.
Handle = Callable[[StoredEvent], Awaitable[None]]


class Lanes:
    """Per-conversation lanes and the ``workers`` tasks that take turns on them.

    Args:
        workers: how many lanes are handled at once (the dispatcher's concurrency).
        handle: runs one event to its settlement.
        life: the dispatcher's state: LEAVING stops the workers before their next event,
            DRAINING once no lane is left.
        slots: with a durable inbox, a worker takes a replay slot before each event.
    """

    def __init__(
        self, workers: int, handle: Handle, life: Lifecycle, slots: ReplaySlots | None
    ) -> None:
        self._workers = workers
        self._handle = handle
        self._life = life
        self._slots = slots
        self._lanes: dict[str, deque[StoredEvent]] = {}
        # Lanes ready for a worker, and workers waiting for one. Waking a worker resolves its
        # future directly: an anyio memory stream costs several backend look-ups and an extra
        # checkpoint per event, a tenth of the hot path.
        self._ready: deque[str] = deque()
        self._idle_workers: deque[asyncio.Future[bool]] = deque()
        self._waking = 0  # workers woken for a ready lane that have not run yet
        if slots is not None:
            slots.on_free = self.wake_for_ready  # lanes that came in while no slot was left

    def add(self, batch: Sequence[StoredEvent]) -> None:
        """Queue claimed events in their lanes; a new lane goes to the ready queue."""
        lanes = self._lanes
        for event in batch:
            lane = lanes.get(event.conversation)
            if lane is None:
                lanes[event.conversation] = deque((event,))
                self._hand_off(event.conversation)
            else:
                lane.append(event)

    def waiting(self) -> list[int]:
        """Seqs of the events still in their lanes: taken from the inbox, never started."""
        return [event.seq for lane in self._lanes.values() for event in lane]

    async def run_workers(self) -> None:
        """Run the workers until no lane is left for them (see ``Lifecycle``)."""
        async with anyio.create_task_group() as workers:
            for _ in range(self._workers):
                workers.start_soon(self._worker)

    def state_changed(self) -> None:
        """The state left RUNNING: if no lane can come any more, the idle workers end."""
        if self._no_more_lanes():
            self._end_idle_workers()

    def _end_idle_workers(self) -> None:
        while self._idle_workers:
            waiter = self._idle_workers.popleft()
            if not waiter.done():
                waiter.set_result(False)

    def wake_for_ready(self) -> None:
        """Wake a worker for the ready lanes if none is waking and a replay slot is free."""
        if self._ready and not self._waking and (self._slots is None or self._slots.left()):
            self._wake_one()

    def _no_more_lanes(self) -> bool:
        """Whether the ready queue is closed: no lane will come from the claim loop, nor
        stay for the workers (LEAVING leaves them in the inbox)."""
        state = self._life.state
        return state is not RUNNING and (state is not DRAINING or not self._lanes)

    def _hand_off(self, conversation: str) -> None:
        self._ready.append(conversation)
        if not self._waking and (self._slots is None or self._slots.left()):
            self._wake_one()

    def _wake_one(self) -> None:
        """Wake an idle worker for the ready lanes, unless all are busy.

        One worker wakes at a time: it takes a lane and, while more are ready, wakes the next
        one. A burst of events for handlers that never wait is run by the first worker
        awake without waking the others, a task switch saved per event; handlers that wait
        free the loop for the next worker, so concurrency still reaches ``workers``.
        """
        while self._idle_workers:
            waiter = self._idle_workers.popleft()
            if not waiter.done():
                waiter.set_result(True)
                self._waking += 1
                return

    async def _next_lane(self) -> str | None:
        while not self._ready:
            if self._no_more_lanes():
                return None
            waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._idle_workers.append(waiter)
            try:
                woken = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.result():
                    self._waking -= 1  # woken, then cancelled before it ran: pass it on
                    if self._ready:
                        self._wake_one()
                raise
            if woken:
                self._waking -= 1
        return self._take_lane()

    def _take_lane(self) -> str:
        """Take the first ready lane, and wake the next worker while more are ready."""
        conversation = self._ready.popleft()
        if self._ready and not self._waking and (self._slots is None or self._slots.left()):
            self._wake_one()
        return conversation

    async def _worker(self) -> None:
        life, lanes, handle, slots = self._life, self._lanes, self._handle, self._slots
        while True:
            # A lane is ready most of the time under load: take it without a coroutine.
            conversation = self._take_lane() if self._ready else await self._next_lane()
            if conversation is None or life.state is LEAVING:
                return
            lane = lanes[conversation]
            for _ in range(LANE_TURN):
                if not lane or life.state is LEAVING:
                    break
                if slots is not None:
                    await slots.reserve()
                await handle(lane.popleft())
            if life.state is LEAVING:
                return
            if lane:
                # Back in the queue; this worker takes the next ready lane at once, so no
                # other worker needs waking for it.
                self._ready.append(conversation)
                continue
            del lanes[conversation]
            if not lanes and life.state is DRAINING:
                self._end_idle_workers()  # the last lane is done: no more can come
