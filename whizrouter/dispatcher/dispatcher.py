"""``Dispatcher``: claims events from the inbox and composes the parts that handle them.

One anyio task group holds the claim loop (here), the workers (``lanes``) and the ack
flusher (``acks``). A claimed event waits in its conversation's lane; a worker takes it,
``_handle`` settles it at once if no handler wants it (or it cannot be decoded), else
``attempts`` runs its handler until it is acked, dead or left. When a handler filters on the
conversation's state (``state=``), the state is loaded before routing (``_route_by_state``),
and that handler's ``ctx.state`` starts from it. ``drain`` moves the one
state (``state``) from RUNNING to DRAINING or LEAVING; the workers' end makes it STOPPED.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from whizrouter.backoff import HANDLER_RETRY, RetryPolicy
from whizrouter.conversation_state import StateAlreadySettled
from whizrouter.defaults import DEFAULT_HANDLER_TIMEOUT
from whizrouter.dispatcher.acks import Acks, ReplaySlots
from whizrouter.dispatcher.attempts import Attempts, ContextFactory
from whizrouter.dispatcher.lanes import Lanes
from whizrouter.dispatcher.state import Lifecycle, State
from whizrouter.errors import (
    ConfigurationError,
    InboxError,
    InboxUnavailableError,
    UnknownNumberError,
)
from whizrouter.inbox.base import Inbox, StoredEvent
from whizrouter.routing import Router
from whizrouter.state import matching_state
from whizrouter.tallies import Timings

log = logging.getLogger("whizrouter.dispatcher")

#: Turns a stored event into ``(typed event, contact)``.
Decoder = Callable[[StoredEvent], tuple[Any, Any]]


async def _nothing_left() -> None:
    """``_handle``'s answer for an event it settled itself."""


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
        handler_timeout: seconds a handler run may take (a handler's own ``timeout`` first).
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
        handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
    ) -> None:
        self._inbox = inbox
        self._router = router
        self._decode = decode
        # Registration is closed once the app starts: an event of a kind no handler takes is
        # settled without building its typed event (a bot without status handlers skips
        # three events in four of a busy number's callbacks).
        self._kinds_handled = router.handled_kinds()
        # Only a bot that routes on state reads it before routing; others never do.
        self._routes_by_state = router.reads_state()
        if self._routes_by_state and not inbox.keeps_state:
            raise ConfigurationError(
                f"handlers filter on conversation state (state=), which the inbox "
                f"{inbox.description} does not keep; use 'memory', 'sqlite:///...' or 'nats://...'"
            )
        self._max_claimed = max_claimed or max(1024, concurrency * 16)
        self._life = Lifecycle()
        slots = ReplaySlots(concurrency) if inbox.durable else None
        self._acks = Acks(inbox, self._life, slots)
        self._attempts = Attempts(
            inbox,
            self._life,
            self._acks,
            slots,
            make_context=make_context,
            plugins=plugins,
            retry=retry,
            handler_timeout=handler_timeout,
        )
        # Overdue runs are looked for about ten times per shortest timeout, at most once a
        # second: no timer per run on the hot path, a run cancelled at most that much late.
        shortest = min([handler_timeout, *(h.timeout for h in router.handlers() if h.timeout)])
        self._timeout_sweep = min(1.0, shortest / 10)
        self._run = self._attempts.run  # looked up once: called for every event
        self._lanes = Lanes(concurrency, self._handle, self._life, slots)
        self._intake_scope = anyio.CancelScope()
        self._worker_scope = anyio.CancelScope()
        self._sweep_scope = anyio.CancelScope()
        #: Events no handler wanted (settled without a run), for logs and tests.
        self.unhandled = 0

    @property
    def state(self) -> State:
        """Where the dispatcher is: RUNNING, DRAINING, LEAVING or STOPPED."""
        return self._life.state

    @property
    def in_flight(self) -> int:
        """Events claimed from the inbox and not yet settled."""
        return self._acks.unsettled

    @property
    def handled(self) -> int:
        """Events whose handler succeeded."""
        return self._attempts.handled

    @property
    def failed_attempts(self) -> int:
        """Handler runs that raised."""
        return self._attempts.failed_attempts

    @property
    def handler_outcomes(self) -> dict[tuple[str, str], int]:
        """Handler runs by (handler, outcome): ``ok``, ``retry``, ``timeout``, ``dead``."""
        attempts = self._attempts
        return {**{(name, "ok"): n for name, n in attempts.succeeded.items()}, **attempts.outcomes}

    @property
    def handler_timings(self) -> dict[str, Timings]:
        """Seconds each handler's runs took, by handler."""
        return self._attempts.timings

    @property
    def dead_lettered(self) -> int:
        """Events moved to the dead letters."""
        return self._attempts.dead_lettered

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Claim and handle events until ``drain`` has finished; use with ``TaskGroup.start``."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._claim_loop)
            group.start_soon(self._run_workers)
            group.start_soon(self._acks.run_flusher)
            group.start_soon(self._cancel_overdue)
            task_status.started()

    async def _cancel_overdue(self) -> None:
        with self._sweep_scope:  # cancelled once the workers have ended
            while True:
                await anyio.sleep(self._timeout_sweep)
                self._attempts.cancel_overdue()

    async def _claim_loop(self) -> None:
        acks = self._acks
        with self._intake_scope:
            while True:
                if acks.unsettled >= self._max_claimed:
                    await acks.wait_for_room(self._max_claimed)
                try:
                    batch = await self._inbox.claim(min(256, self._max_claimed - acks.unsettled))
                except InboxUnavailableError as exc:
                    await self._life.wait_out(exc, "hand out events")
                    continue
                except InboxError:
                    raise  # explained by its message, which the app logs as the failure
                except Exception:
                    log.critical(
                        "the inbox failed to hand out events; the dispatcher stops", exc_info=True
                    )
                    raise
                self._life.storage_works()
                acks.claimed(len(batch))
                self._lanes.add(batch)

    async def _run_workers(self) -> None:
        try:
            with self._worker_scope:
                await self._lanes.run_workers()
        finally:
            # Also when the claim loop failed and cancelled us: ``drain`` waits on this.
            self._life.workers_ended()
            self._sweep_scope.cancel()
            self._lanes.state_changed()
            self._acks.workers_ended()

    async def drain(self, grace: float) -> int:
        """Stop intake, give running handlers ``grace`` seconds to finish, then stop.

        Returns:
            claimed events left unhandled: a durable inbox replays them at the next start,
            a memory inbox loses them.
        """
        if self._life.stop_intake(durable=self._inbox.durable):
            self._intake_scope.cancel()
            self._lanes.state_changed()
        with anyio.move_on_after(grace):
            await self._life.wait_stopped()
        if self._life.state is not State.STOPPED:
            running = self.running_handlers()
            log.warning(
                "handlers still running after the %.0f s grace period; cancelling %d: %s%s; %s",
                grace,
                len(running),
                ", ".join(running[:5]),
                f" and {len(running) - 5} more" if len(running) > 5 else "",
                "they stay in the inbox and run again at the next start"
                if self._inbox.durable
                else "the memory inbox loses them",
            )
            self._worker_scope.cancel()
            await self._life.wait_stopped()
        await self._acks.wait_flushed()
        return self._acks.unsettled

    def running_handlers(self) -> list[str]:
        """The handler runs under way, as ``"<event key> in <handler>"``."""
        return self._attempts.running_handlers()

    def unstarted(self) -> list[int]:
        """Seqs of claimed events whose run must not be counted at release: those no handler
        has started (waiting in their lanes, or for their turn to be counted), those whose run
        was counted before it began, and those waiting for a retry (each failure recorded).

        After ``drain``, a durable inbox hands these back without counting an attempt.
        """
        return self._lanes.waiting() + self._attempts.recorded()

    async def wait_idle(self) -> None:
        """Wait until every event stored so far has been settled (handled, unwanted or dead)."""
        await self._acks.wait_idle()

    def _handle(self, stored: StoredEvent) -> Awaitable[None]:
        """What settles ``stored``: its handler's run, or a dead letter or an ack.

        Returns the awaitable instead of being a coroutine itself: one coroutine less for
        every event.
        """
        if stored.kind not in self._kinds_handled:
            return self._unwanted(stored)
        try:
            event, contact = self._decode(stored)
        except UnknownNumberError as exc:
            # No key to answer it with (see whizrouter.numbers): its message names the setting.
            return self._attempts.dead(stored, "<numbers>", stored.attempts + 1, str(exc))
        except Exception as exc:
            log.exception("event %s could not be decoded; dead-lettering it", stored.key)
            reason = str(exc).replace("\n", " ")[:300]
            return self._attempts.dead(
                stored, "<decode>", stored.attempts + 1, f"could not decode event: {reason}"
            )
        if self._routes_by_state:
            return self._route_by_state(stored, event, contact)
        spec = self._router.resolve(stored.kind, event)
        if spec is None:
            return self._unwanted(stored)
        return self._run(stored, spec, event, contact)

    async def _route_by_state(self, stored: StoredEvent, event: Any, contact: Any) -> None:
        """Load the conversation's state, route on it, run the handler with it."""
        handle = self._acks.overlay.handle(stored)
        while True:
            try:
                current = await handle.get()
                break
            except StateAlreadySettled:
                self._acks.settle(stored.seq, ack=True)  # settled before a crash
                return
            except InboxUnavailableError as exc:
                # The conversation waits (order is kept) until the storage works again.
                await self._life.wait_out(exc, "read a conversation's state")
            except Exception as exc:
                log.exception("the state of conversation %s could not be read", stored.conversation)
                await self._attempts.dead(
                    stored, "<state>", stored.attempts + 1, f"could not read its state: {exc}"
                )
                return
        token = matching_state.set(current)
        try:
            spec = self._router.resolve(stored.kind, event)
        finally:
            matching_state.reset(token)
        if spec is None:
            await self._unwanted(stored)
            return
        await self._run(stored, spec, event, contact, handle)

    def _unwanted(self, stored: StoredEvent) -> Awaitable[None]:
        self.unhandled += 1
        log.debug("no handler wants %s event %s; settling it", stored.kind, stored.key)
        self._acks.settle(stored.seq, ack=True)
        return _nothing_left()
