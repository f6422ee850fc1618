"""The dispatcher: from the inbox to the handlers, in conversation order.

One anyio task group holds a claim loop, a fixed pool of ``concurrency`` workers and an ack
flusher. Claimed events wait in one lane per conversation; a lane is on the ready queue or in
exactly one worker's hands, never both, so events of a conversation run one after another in
arrival order while different conversations run concurrently. A lane that stays busy yields
its worker after a few events so one chatty conversation cannot starve the others. A failing
handler is retried with backoff inside its lane (keeping the order), then dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from whizrouter.backoff import HANDLER_RETRY, RetryPolicy
from whizrouter.context import Context
from whizrouter.errors import (
    ConfigurationError,
    InboxError,
    InboxUnavailableError,
    MessageValidationError,
    ProviderError,
    WhizrouterError,
)
from whizrouter.inbox.base import Inbox, StoredEvent
from whizrouter.inbox.factory import DEFAULT_INBOX_URL
from whizrouter.plugins import call_hook, call_hooks, hooks_of
from whizrouter.routing import HandlerSpec, Router

log = logging.getLogger("whizrouter.dispatcher")

#: Events a worker handles from one lane before it lets other lanes go first.
LANE_TURN = 8

Decoder = Callable[[StoredEvent], tuple[Any, Any]]
ContextFactory = Callable[[StoredEvent, Any, Any, int], Context]


async def _nothing_left() -> None:
    """``_handle``'s answer for an event it settled itself."""


def worth_retrying(exc: BaseException) -> bool:
    """Whether running the handler again could succeed.

    A missing setting, a message the provider would refuse, or a provider error that is not
    transient (a bad parameter, outside the 24-hour window) fails the same way every time, so
    such an event is dead-lettered at once; fix the cause, then ``whizrouter dead replay``.
    """
    if isinstance(exc, ConfigurationError | MessageValidationError):
        return False
    return not (isinstance(exc, ProviderError) and not exc.retryable)


class Dispatcher:
    """Claims events from an inbox and runs the matching handlers.

    Args:
        inbox: where events wait.
        router: the root router handlers are resolved from.
        decode: turns a stored event into ``(typed event, contact)``.
        make_context: builds the ``Context`` for an event, its contact and the attempt number.
        plugins: objects with optional hooks (see ``whizrouter.plugins``).
        concurrency: how many conversations are handled at once.
        retry: the default retry policy for failing handlers.
        max_claimed: most events held in memory (claimed, not yet settled) at once.
    """

    def __init__(
        self,
        inbox: Inbox,
        router: Router,
        *,
        decode: Decoder,
        make_context: ContextFactory,
        plugins: list[object],
        concurrency: int = 64,
        retry: RetryPolicy = HANDLER_RETRY,
        max_claimed: int | None = None,
    ) -> None:
        self._inbox = inbox
        self._router = router
        self._decode = decode
        self._make_context = make_context
        self._plugins = plugins
        self._concurrency = concurrency
        self._durable = inbox.durable
        # Hooks looked up once: most apps have none, and an empty hook call per event is not
        # free on the hot path.
        self._before_hooks = hooks_of(plugins, "before_handle")
        self._after_hooks = hooks_of(plugins, "after_handle")
        # Registration is closed once the app starts: an event of a kind no handler takes is
        # settled without building its typed event (a bot without status handlers skips
        # three events in four of a busy number's callbacks).
        self._kinds_handled = router.handled_kinds()
        self._retry = retry
        # The CLI finds the default inbox by itself; any other must be named.
        described = inbox.description
        self._inbox_option = (
            "" if described in ("", DEFAULT_INBOX_URL) else f" --inbox '{described}'"
        )
        self._max_claimed = max_claimed or max(1024, concurrency * 16)
        self._lanes: dict[str, deque[StoredEvent]] = {}
        self._claimed = 0
        # Handler runs under way, by seq: (event key, handler), for the shutdown warning.
        self._running: dict[int, tuple[str, str]] = {}
        # Unsettled events whose current run was counted before it started (``maybe_ran``),
        # and the lock that counts and starts them one at a time (``_count_alone``).
        self._counted: set[int] = set()
        # Unsettled events left at a stop with every run they had already recorded: taken
        # from their lane but never started, or waiting for a retry.
        self._recorded_at_stop: list[int] = []
        self._counting = asyncio.Lock()
        self._counting_seq = -1  # the seq whose run holds ``_counting``
        # Storage failures in a row (InboxUnavailableError), and when the last was logged.
        self._trouble_streak = 0
        self._trouble_logged = -math.inf
        # asyncio events where one is made per wait: an anyio.Event costs about 3 us to build
        # (a backend look-up), an asyncio one a tenth of that. The dispatcher is asyncio-only.
        self._room = asyncio.Event()
        # Plain flags beside the events, read for every settled event: an Event's is_set is
        # a Python call (two through anyio's), several per event on the hot path.
        self._room_wanted = False  # the claim loop waits for room
        self._flusher_idle = False  # the ack flusher waits for acks
        self._stopping = False  # drain has begun
        # Drain has begun and the inbox keeps what was not started for the next start (a
        # memory inbox would lose it, so its workers keep going until the grace period ends).
        self._leaving = False
        self._acks: list[int] = []
        # Durable inbox: events started whose ack is not committed (see _reserve_replay_slot),
        # and workers waiting for one of those slots, first come first served.
        self._unacked = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._idle = asyncio.Event()
        self._ack_wakeup = asyncio.Event()
        self._stop_event = anyio.Event()
        self._intake_scope = anyio.CancelScope()
        self._worker_scope = anyio.CancelScope()
        self._workers_done = anyio.Event()
        self._flusher_done = anyio.Event()
        # Lanes ready for a worker, and workers waiting for one. Waking a worker resolves its
        # future directly: an anyio memory stream costs several backend look-ups and an extra
        # checkpoint per event, a tenth of the hot path.
        self._ready: deque[str] = deque()
        self._idle_workers: deque[asyncio.Future[bool]] = deque()
        self._waking = 0  # workers woken for a ready lane that have not run yet
        self._ready_closed = False
        #: Counters for logs, health checks and tests.
        self.handled = 0
        self.failed_attempts = 0
        self.dead_lettered = 0
        self.unhandled = 0

    @property
    def in_flight(self) -> int:
        """Events claimed from the inbox and not yet settled."""
        return self._claimed

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Claim and handle events until ``drain`` has finished; use with ``TaskGroup.start``."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._claim_loop)
            group.start_soon(self._run_workers)
            group.start_soon(self._flush_acks)
            task_status.started()

    async def _claim_loop(self) -> None:
        with self._intake_scope:
            while True:
                while self._claimed >= self._max_claimed:
                    self._room = asyncio.Event()
                    self._room_wanted = True
                    await self._room.wait()
                try:
                    batch = await self._inbox.claim(min(256, self._max_claimed - self._claimed))
                except InboxUnavailableError as exc:
                    await self._wait_out(exc, "hand out events")
                    continue
                except InboxError:
                    raise  # explained by its message, which the app logs as the failure
                except Exception:
                    log.critical(
                        "the inbox failed to hand out events; the dispatcher stops", exc_info=True
                    )
                    raise
                self._trouble_streak = 0
                self._claimed += len(batch)
                lanes = self._lanes
                for event in batch:
                    lane = lanes.get(event.conversation)
                    if lane is None:
                        lanes[event.conversation] = deque((event,))
                        self._hand_off(event.conversation)
                    else:
                        lane.append(event)

    async def _run_workers(self) -> None:
        try:
            with self._worker_scope:
                async with anyio.create_task_group() as workers:
                    for _ in range(self._concurrency):
                        workers.start_soon(self._worker)
        finally:
            # Also when the claim loop failed and cancelled us: ``drain`` waits on this.
            self._close_ready()
            self._workers_done.set()
            self._ack_wakeup.set()

    def _hand_off(self, conversation: str) -> None:
        self._ready.append(conversation)
        if not self._waking and (not self._durable or self._replay_slots_left()):
            self._wake_one()

    def _wake_one(self) -> None:
        """Wake an idle worker for the ready lanes, unless all are busy.

        One worker wakes at a time: it takes a lane and, while more are ready, wakes the next
        one. A burst of events for handlers that never wait is run by the first worker
        awake without waking the others, a task switch saved per event; handlers that wait
        free the loop for the next worker, so concurrency still reaches ``concurrency``.
        """
        while self._idle_workers:
            waiter = self._idle_workers.popleft()
            if not waiter.done():
                waiter.set_result(True)
                self._waking += 1
                return

    def _close_ready(self) -> None:
        """No more lanes: idle workers end, busy ones end once the ready lanes are done."""
        self._ready_closed = True
        while self._idle_workers:
            waiter = self._idle_workers.popleft()
            if not waiter.done():
                waiter.set_result(False)

    async def _next_lane(self) -> str | None:
        while not self._ready:
            if self._ready_closed:
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
        if self._ready and not self._waking and (not self._durable or self._replay_slots_left()):
            self._wake_one()
        return conversation

    async def _worker(self) -> None:
        while True:
            # A lane is ready most of the time under load: take it without a coroutine.
            conversation = self._take_lane() if self._ready else await self._next_lane()
            if conversation is None:
                return
            if self._leaving:
                return
            lane = self._lanes[conversation]
            for _ in range(LANE_TURN):
                if not lane or self._leaving:
                    break
                if self._durable:
                    await self._reserve_replay_slot()
                await self._handle(lane.popleft())
            if self._leaving:
                return
            if lane:
                # Back in the queue; this worker takes the next ready lane at once, so no
                # other worker needs waking for it.
                self._ready.append(conversation)
                continue
            del self._lanes[conversation]
            if self._stopping and not self._lanes:
                self._close_ready()

    async def drain(self, grace: float) -> int:
        """Stop intake, give running handlers ``grace`` seconds to finish, then stop.

        Returns:
            claimed events left unhandled: a durable inbox replays them at the next start,
            a memory inbox loses them.
        """
        self._stop_event.set()
        self._stopping = True
        self._leaving = self._durable
        self._intake_scope.cancel()
        if self._inbox.durable or not self._lanes:
            self._close_ready()
        with anyio.move_on_after(grace):
            await self._workers_done.wait()
        if not self._workers_done.is_set():
            running = self.running_handlers()
            log.warning(
                "handlers still running after the %.0f s grace period; cancelling %d: %s%s; %s",
                grace,
                len(running),
                ", ".join(running[:5]),
                f" and {len(running) - 5} more" if len(running) > 5 else "",
                "they stay in the inbox and run again at the next start"
                if self._durable
                else "the memory inbox loses them",
            )
            self._worker_scope.cancel()
            await self._workers_done.wait()
        await self._flusher_done.wait()
        return self._claimed

    def running_handlers(self) -> list[str]:
        """The handler runs under way, as ``"<event key> in <handler>"``."""
        return [f"{key} in {handler}" for key, handler in self._running.values()]

    def _replay_slots_left(self) -> bool:
        return self._unacked < self._concurrency

    async def _reserve_replay_slot(self) -> None:
        """Wait until fewer than ``concurrency`` started events lack a committed ack.

        A crash replays every event that was started and whose ack was not committed yet;
        this bounds those to ``concurrency``, as if each worker waited for its own ack, while
        a worker whose handler returned at once goes on to the next event without waiting
        for the flusher (one task switch less per event).
        """
        if self._replay_slots_left() and not self._slot_waiters:
            self._unacked += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(waiter)
        try:
            await waiter  # the slot is handed over with the result
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release_replay_slot()
            raise

    def _release_replay_slot(self, count: int = 1) -> None:
        self._unacked -= count
        waiters = self._slot_waiters
        while waiters and self._replay_slots_left():
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._unacked += 1
        if self._ready and not self._waking and self._replay_slots_left():
            self._wake_one()  # lanes that came in while no slot was left

    def unstarted(self) -> list[int]:
        """Seqs of claimed events whose run must not be counted at release: those no handler
        has started (waiting in their lanes, or for their turn to be counted), those whose run
        was counted before it began, and those waiting for a retry (each failure recorded).

        After ``drain``, a durable inbox hands these back without counting an attempt.
        """
        waiting = [event.seq for lane in self._lanes.values() for event in lane]
        return waiting + sorted(self._counted) + self._recorded_at_stop

    def _settle(self, seq: int, *, ack: bool) -> None:
        """Release the event's slot; its ack goes to the batching flusher.

        Not a coroutine: every handled event passes here, and the flusher acks a batch in one
        inbox call (one task switch per batch instead of an ack call per event).
        """
        self._claimed -= 1
        self._running.pop(seq, None)
        if self._counted:
            self._counted.discard(seq)
        if self._room_wanted:
            self._room_wanted = False
            self._room.set()
        if ack:
            self._acks.append(seq)
            if self._flusher_idle:
                self._flusher_idle = False
                self._ack_wakeup.set()
            return  # the flusher releases the replay slot and checks for idleness
        if self._durable:
            self._release_replay_slot()
        self._check_idle()

    def _check_idle(self) -> None:
        if self._claimed == 0 and self._inbox.backlog() == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until every event stored so far has been settled (handled, unwanted or dead)."""
        while self._claimed or self._inbox.backlog():
            if self._idle.is_set():
                self._idle = asyncio.Event()
            await self._idle.wait()

    async def _flush_acks(self) -> None:
        try:
            await self._flush_acks_until_done()
        finally:
            self._flusher_done.set()

    async def _flush_acks_until_done(self) -> None:
        # One ack call at a time: acks that arrive meanwhile form the next batch.
        while True:
            if not self._acks:
                if self._workers_done.is_set():
                    return
                self._ack_wakeup = asyncio.Event()
                self._flusher_idle = True
                await self._ack_wakeup.wait()
                continue
            batch, self._acks = self._acks, []
            try:
                await self._inbox.ack(batch)
            except Exception:
                # Unsettled means replayed after a restart: a duplicate, never a loss.
                log.exception("could not settle %d handled events in the inbox", len(batch))
            finally:
                if self._durable:
                    self._release_replay_slot(len(batch))
            self._check_idle()

    def _handle(self, stored: StoredEvent) -> Awaitable[None]:
        """What settles ``stored``: its handler's run, or a dead letter or an ack.

        Returns the awaitable instead of being a coroutine itself: one coroutine less for
        every event.
        """
        if stored.kind not in self._kinds_handled:
            return self._unwanted(stored)
        try:
            event, contact = self._decode(stored)
        except Exception as exc:
            log.exception("event %s could not be decoded; dead-lettering it", stored.key)
            reason = str(exc).replace("\n", " ")[:300]
            return self._dead(
                stored, "<decode>", stored.attempts + 1, f"could not decode event: {reason}"
            )
        spec = self._router.resolve(stored.kind, event)
        if spec is None:
            return self._unwanted(stored)
        if stored.attempts or stored.maybe_ran or self._before_hooks or self._after_hooks:
            return self._run_handler(stored, spec, event, contact)
        return self._run_first(stored, spec, event, contact)

    async def _run_first(
        self, stored: StoredEvent, spec: HandlerSpec, event: Any, contact: Any
    ) -> None:
        """The first run of an event, without hooks: most events, so only the handler itself
        here; a failure goes on to ``_run_handler``'s retries."""
        ctx = self._begin(stored, spec, event, contact, 1)
        try:
            await spec.callback(event, ctx)
        except Exception as exc:
            await self._run_handler(stored, spec, event, contact, failed=exc, ctx=ctx)
            return
        self.handled += 1
        self._settle(stored.seq, ack=True)

    def _begin(
        self, stored: StoredEvent, spec: HandlerSpec, event: Any, contact: Any, attempt: int
    ) -> Context:
        """Note the run as under way (for the shutdown warning) and build its context."""
        self._running[stored.seq] = (stored.key, spec.name)
        ctx = self._make_context(stored, event, contact, attempt)
        ctx.handler = spec.name
        return ctx

    def _unwanted(self, stored: StoredEvent) -> Awaitable[None]:
        self.unhandled += 1
        log.debug("no handler wants %s event %s; settling it", stored.kind, stored.key)
        self._settle(stored.seq, ack=True)
        return _nothing_left()

    async def _run_handler(
        self,
        stored: StoredEvent,
        spec: HandlerSpec,
        event: Any,
        contact: Any,
        *,
        failed: Exception | None = None,
        ctx: Context | None = None,
    ) -> None:
        """Run the handler, retrying failures per its policy; ``failed`` is the first run's
        failure when ``_run_first`` made that run with ``ctx``."""
        policy = spec.retry or self._retry
        # A run that may have happened before a crash makes this attempt 2 or more, so the
        # handler knows to be idempotent.
        attempt = stored.attempts + 1 + stored.maybe_ran
        # Runs known to have started count against the budget, so an event that kills the
        # process (a crash loop) ends up dead instead of being replayed forever. Events the
        # crashed process had only taken are not counted: they may never have started.
        failures = stored.attempts
        if failures > policy.attempts:
            await self._dead(
                stored,
                spec.name,
                stored.attempts,
                f"started {stored.attempts} time{'' if stored.attempts == 1 else 's'} without "
                "finishing (the process stopped while handling it each time)",
            )
            return
        counting = stored.maybe_ran
        if counting and not await self._count_alone(stored.seq):
            self._release_replay_slot()
            self._recorded_at_stop.append(stored.seq)
            return  # stopping: stays pending in the durable inbox, run after the restart
        waited = 0.0
        if ctx is None:
            ctx = self._begin(stored, spec, event, contact, attempt)
        try:
            while True:
                try:
                    if failed is not None:
                        # Handled below as if raised here: the first run failed in _run_first.
                        first_failure, failed = failed, None
                        raise first_failure
                    if self._before_hooks:
                        await call_hooks(self._before_hooks, "before_handle", event, ctx)
                    if counting:
                        # The handler itself is about to start: the next counted event may be
                        # counted once this task first waits, inside the handler.
                        counting = False
                        asyncio.get_running_loop().call_soon(self._release_counting, stored.seq)
                    await spec.callback(event, ctx)
                except Exception as exc:
                    if counting:  # a hook failed: the next counted event need not wait on it
                        counting = False
                        self._release_counting(stored.seq)
                    failures += 1
                    self.failed_attempts += 1
                    error = f"{type(exc).__name__}: {exc}"
                    await call_hook(self._plugins, "on_error", event, ctx, exc)
                    pause = policy.delay(failures)
                    # A rate limit's Retry-After is honoured in full, within the policy's total.
                    asked = getattr(exc, "retry_after", None)
                    if isinstance(asked, (int, float)) and asked > pause:
                        pause = float(asked)
                    retryable = worth_retrying(exc)
                    if not retryable or not policy.allows(failures, waited, pause):
                        log.error(
                            "handler %s failed on event %s (attempt %d%s): %s",
                            spec.name,
                            stored.key,
                            attempt,
                            "" if retryable else ", not worth retrying",
                            error,
                            # whizrouter's own errors (a missing key, a provider error) say
                            # what to do; their traceback would bury that, so it goes to debug.
                            exc_info=None if isinstance(exc, WhizrouterError) else exc,
                        )
                        if isinstance(exc, WhizrouterError):
                            log.debug("where handler %s failed", spec.name, exc_info=exc)
                        await self._dead(stored, spec.name, attempt, error)
                        return
                    log.warning(
                        "handler %s failed on event %s (attempt %d), retrying in %.1f s: %s",
                        spec.name,
                        stored.key,
                        attempt,
                        pause,
                        error,
                    )
                    try:
                        await self._inbox.record_attempt(stored.seq, failures, error)
                    except Exception:
                        log.exception("could not record the failed attempt of event %s", stored.key)
                    waited += pause
                    if self._inbox.durable:
                        with anyio.move_on_after(policy.wait_for(pause)):
                            await self._stop_event.wait()
                    else:
                        await anyio.sleep(policy.wait_for(pause))
                    if self._leaving:
                        self._release_replay_slot()
                        self._recorded_at_stop.append(stored.seq)
                        return  # stays pending in the durable inbox, retried after the restart
                    attempt += 1
                    ctx.attempt = attempt
                    continue
                if self._after_hooks:
                    await call_hooks(self._after_hooks, "after_handle", event, ctx)
                self.handled += 1
                self._settle(stored.seq, ack=True)
                return
        finally:
            if counting:  # a hook failed, or the stop came, before the handler started
                self._release_counting(stored.seq)

    async def _count_alone(self, seq: int) -> bool:
        """Count the run of a ``maybe_ran`` event just before it starts; False when stopping.

        Counted first, so that if this run kills the process too, the next start knows it
        happened (a crash loop ends dead). One such event at a time, from its count until its
        handler itself first waits (``before_handle`` hooks included): were several counted
        at once, a handler killing the process the moment it starts would leave the others
        counted without having run. This way a crash leaves at most the one event whose count
        was being written counted but not run. The caller releases the lock.
        """
        await self._counting.acquire()
        if self._leaving:
            self._counting.release()
            return False
        self._counting_seq = seq
        try:
            while True:
                try:
                    await self._inbox.count_run(seq)
                    break
                except InboxUnavailableError as exc:
                    # Not started uncounted, and the conversation waits: order is kept.
                    await self._wait_out(exc, "count the run of an event before it starts")
                    if self._leaving:
                        self._release_counting(seq)
                        return False
        except BaseException:
            self._release_counting(seq)
            raise
        self._counted.add(seq)
        return True

    async def _wait_out(self, exc: InboxUnavailableError, doing: str) -> None:
        """Wait a little before trying again to ``doing`` while the inbox's storage fails;
        say so at most once every 10 s."""
        self._trouble_streak += 1
        now = time.monotonic()
        if now - self._trouble_logged >= 10.0:
            self._trouble_logged = now
            log.error("the inbox cannot %s now, trying again: %s", doing, exc)
        with anyio.move_on_after(min(0.05 * 2**self._trouble_streak, 5.0)):
            await self._stop_event.wait()

    def _release_counting(self, seq: int) -> None:
        """Let the next counted event be counted, unless ``seq`` has done so already."""
        if self._counting_seq == seq:
            self._counting_seq = -1
            self._counting.release()

    async def _dead(self, stored: StoredEvent, handler: str, attempts: int, error: str) -> None:
        try:
            await self._inbox.dead(stored.seq, handler=handler, attempts=attempts, error=error)
        except Exception:
            log.exception("could not dead-letter event %s; it stays pending", stored.key)
        else:
            self.dead_lettered += 1
            log.error(
                "event %s of conversation %s is dead after %d attempt%s in %s: %s; %s",
                stored.key,
                stored.conversation,
                attempts,
                "" if attempts == 1 else "s",
                handler,
                error,
                f"inspect it with `whizrouter dead list{self._inbox_option}`, replay it with "
                f"`whizrouter dead replay {stored.seq}{self._inbox_option}`"
                if self._durable
                else f"the memory inbox keeps it as dead letter {stored.seq} while the process "
                "runs (app.inbox.dead_letters(), app.inbox.replay([...]))",
            )
        self._settle(stored.seq, ack=False)
