"""The attempts: running a handler on an event until the event is settled.

``Attempts.run`` is the one run path of every event a handler takes: a first run, a retry
after a failure (with backoff, and a rate limit's ``Retry-After`` waited in full), and a
replay after a crash. It ends in exactly one of: the ack of a success, a dead letter once the
retry policy gives up (or the error cannot heal), or, when a durable inbox's dispatcher
leaves, the event left in the inbox with every attempt it recorded.

Crash accounting: the next run of an event a crashed process held (``maybe_ran``) is counted
before it starts (``_count_alone``), and an event whose counted runs exceed the budget is
dead-lettered without running, so a crash loop ends.

Conversation state: each run gets a fresh ``ctx.state`` (loaded on first use); a success
settles with what it changed, a failure drops it, so a retry starts from the state as it was.

Mixed in, so the run path reaches their state as its own: the handler timeouts
(``timeouts``) and the counts and timings of runs (``run_counts``).
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections.abc import Callable
from time import monotonic
from typing import Any

import anyio

from whizrouter import json_logs
from whizrouter.backoff import RetryPolicy
from whizrouter.context import Context
from whizrouter.conversation_state import ConversationState
from whizrouter.defaults import DEFAULT_HANDLER_TIMEOUT, DEFAULT_INBOX_URL
from whizrouter.dispatcher.acks import Acks, ReplaySlots
from whizrouter.dispatcher.run_counts import RunCounts
from whizrouter.dispatcher.state import LEAVING, Lifecycle
from whizrouter.dispatcher.state_overlay import StateOverlay
from whizrouter.dispatcher.timeouts import WORKER, HandlerTimeouts, remember_worker
from whizrouter.errors import (
    ConfigurationError,
    HandlerTimeoutError,
    InboxError,
    InboxUnavailableError,
    MessageValidationError,
    ProviderError,
    WhizrouterError,
)
from whizrouter.inbox.base import Inbox, StoredEvent
from whizrouter.inbox.stored_state import StateWrite
from whizrouter.json_logs import EVENT_FIELDS
from whizrouter.log_throttle import LogThrottle
from whizrouter.plugins import call_hook, call_hooks, hooks_of
from whizrouter.routing import HandlerSpec

log = logging.getLogger("whizrouter.dispatcher")

#: Builds the ``Context`` for an event, its contact and the attempt number.
ContextFactory = Callable[[StoredEvent, Any, Any, int], Context]


def worth_retrying(exc: BaseException) -> bool:
    """Whether running the handler again could succeed.

    A missing setting, a message the provider would refuse, or a provider error that is not
    transient (a bad parameter, outside the 24-hour window) fails the same way every time, so
    such an event is dead-lettered at once; fix the cause, then ``whizrouter dead replay``.
    """
    if isinstance(exc, ConfigurationError | MessageValidationError):
        return False
    return not (isinstance(exc, ProviderError) and not exc.retryable)


class Attempts(RunCounts, HandlerTimeouts):
    """Runs handlers with retries, counts runs that may have crashed, dead-letters.

    Args:
        inbox: where failed attempts are recorded and dead letters go.
        life: the dispatcher's state: LEAVING ends a retry's wait and leaves the event.
        acks: where every event ends (``Acks.settle``).
        slots: a durable inbox's replay slots; an event left at the stop gives its slot back.
        make_context: builds the ``Context`` of a run.
        plugins: objects with optional hooks (see ``whizrouter.plugins``).
        retry: the policy of handlers without their own.
        handler_timeout: seconds a run of a handler without its own ``timeout`` may take.
    """

    def __init__(
        self,
        inbox: Inbox,
        life: Lifecycle,
        acks: Acks,
        slots: ReplaySlots | None,
        *,
        make_context: ContextFactory,
        plugins: list[object],
        retry: RetryPolicy,
        handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
    ) -> None:
        self._inbox = inbox
        self._life = life
        self._acks = acks
        self._overlay: StateOverlay = acks.overlay
        self._slots = slots
        self._make_context = make_context
        self._plugins = plugins
        self._retry = retry
        # Hooks looked up once: most apps have none, and an empty hook call per event is not
        # free on the hot path.
        self._before_hooks = hooks_of(plugins, "before_handle")
        self._after_hooks = hooks_of(plugins, "after_handle")
        # The CLI finds the default inbox by itself; any other must be named.
        described = inbox.description
        self._inbox_option = (
            "" if described in ("", DEFAULT_INBOX_URL) else f" --inbox '{described}'"
        )
        # Handler runs under way, by seq: (event key, handler), for the shutdown warning.
        self._running: dict[int, tuple[str, str]] = {}
        # Unsettled events whose current run was counted before it started (``maybe_ran``),
        # and the lock that counts and starts them one at a time (``_count_alone``).
        self._counted: set[int] = set()
        self._counting = asyncio.Lock()
        self._counting_seq = -1  # the seq whose run holds ``_counting``
        # Unsettled events left at a stop with every run they had already recorded: taken
        # from their lane but never started, or waiting for a retry.
        self._left: list[int] = []
        RunCounts.__init__(self)
        HandlerTimeouts.__init__(self, handler_timeout)
        self._storage_log = LogThrottle()

    def running_handlers(self) -> list[str]:
        """The handler runs under way, as ``"<event key> in <handler>"``."""
        return [f"{key} in {handler}" for key, handler in self._running.values()]

    def recorded(self) -> list[int]:
        """Seqs of unsettled events whose runs are all recorded: the one counted before it
        began, and those left at the stop before a run or a retry."""
        return sorted(self._counted) + self._left

    async def run(
        self,
        stored: StoredEvent,
        spec: HandlerSpec,
        event: Any,
        contact: Any,
        state: ConversationState | None = None,
    ) -> None:
        """Run ``spec``'s handler on the event until it succeeds, is dead, or is left.

        ``state``: the conversation's state as routing loaded it, for the first run's
        ``ctx.state``.
        """
        failures = stored.attempts
        counting = stored.maybe_ran
        if failures or counting:
            # Runs known to have started count against the budget, so an event that kills
            # the process (a crash loop) ends up dead instead of being replayed forever.
            # Events the crashed process had only taken are not counted: they may never have
            # started.
            if failures > (spec.retry or self._retry).attempts:
                await self.dead(
                    stored,
                    spec.name,
                    failures,
                    f"started {failures} time{'' if failures == 1 else 's'} without finishing "
                    "(the process stopped while handling it each time)",
                )
                return
            if counting and not await self._count_alone(stored.seq):
                self._leave(stored.seq)
                return  # stopping: stays pending in the durable inbox, run after the restart
        # A run that may have happened before a crash makes this attempt 2 or more, so the
        # handler knows to be idempotent.
        attempt = failures + 1 + counting
        self._running[stored.seq] = (stored.key, spec.name)
        ctx = self._make_context(stored, event, contact, attempt)
        ctx.handler = spec.name
        ctx.state_source = self._overlay
        ctx.state_event = stored
        ctx.state_handle = state
        waited = 0.0
        seq = stored.seq
        timeout = spec.timeout or self._timeout
        task = WORKER.get() or remember_worker()
        # With JSON logs, every line logged during the run carries the event.
        fields = (
            EVENT_FIELDS.set((stored.key, stored.conversation, spec.name, attempt))
            if json_logs.in_use
            else None
        )
        try:
            while True:
                started = monotonic()
                self._deadlines[seq] = (started + timeout, task)
                try:
                    if self._before_hooks:
                        await call_hooks(self._before_hooks, "before_handle", event, ctx)
                    if counting:
                        # The handler itself is about to start: the next counted event may be
                        # counted once this task first waits, inside the handler.
                        counting = False
                        asyncio.get_running_loop().call_soon(self._release_counting, stored.seq)
                    await spec.callback(event, ctx)
                except (Exception, asyncio.CancelledError) as caught:
                    del self._deadlines[seq]
                    self._timed(spec.name, started)
                    if isinstance(caught, asyncio.CancelledError):
                        if not self._cut_at_timeout(seq, task):
                            raise
                        exc: Exception = HandlerTimeoutError(
                            f"handler {spec.name} did not finish within {timeout:g} s "
                            "(its timeout) and was cancelled",
                            seconds=timeout,
                        )
                        self._count(spec.name, "timeout")
                    else:
                        exc = caught
                    if counting:  # a hook failed: the next counted event need not wait on it
                        counting = False
                        self._release_counting(stored.seq)
                    handle = ctx.state_handle
                    if handle is not None:
                        if handle.stale:  # settled before a crash: nothing left to do
                            self._settle(stored.seq, ack=True)
                            return
                        ctx.state_handle = None  # the retry starts from the state as it was
                    failures += 1
                    pause = await self._retry_or_end(
                        stored, spec, event, ctx, exc, attempt, failures, waited
                    )
                    if pause is None:
                        return  # dead-lettered, or left in the inbox
                    waited += pause
                    attempt += 1
                    ctx.attempt = attempt
                    if fields is not None:
                        EVENT_FIELDS.set((stored.key, stored.conversation, spec.name, attempt))
                else:
                    if self._after_hooks:
                        await call_hooks(self._after_hooks, "after_handle", event, ctx)
                    del self._deadlines[seq]
                    if self._timed_out:  # cancelled as it finished, and it did not notice
                        self._cut_at_timeout(seq, task)
                    # Timings.observe and the count, inlined: a call each for every event
                    # would cost more than their bodies.
                    elapsed = monotonic() - started
                    name = spec.name
                    timings = self.timings.get(name) or self._new_timings(name)
                    timings.counts[bisect_left(timings.bounds, elapsed)] += 1
                    timings.total += elapsed
                    succeeded = self.succeeded
                    succeeded[name] = succeeded.get(name, 0) + 1
                    self.handled += 1
                    handle = ctx.state_handle
                    write = None if handle is None else handle.write()
                    self._settle(stored.seq, ack=True, write=write)
                    return
        finally:
            if fields is not None:
                EVENT_FIELDS.reset(fields)
            self._deadlines.pop(seq, None)
            if counting:  # the stop came before the handler started
                self._release_counting(stored.seq)

    async def _retry_or_end(
        self,
        stored: StoredEvent,
        spec: HandlerSpec,
        event: Any,
        ctx: Context,
        exc: Exception,
        attempt: int,
        failures: int,
        waited: float,
    ) -> float | None:
        """After the failure of ``attempt`` (the ``failures``-th failed run, ``waited`` seconds
        into the retries): dead-letter the event, or record the failure and wait for the next
        attempt. Returns the pause waited, or None if the event is dead or left at the stop."""
        policy = spec.retry or self._retry
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
                # whizrouter's own errors (a missing key, a provider error) say what to do;
                # their traceback would bury that, so it goes to debug.
                exc_info=None if isinstance(exc, WhizrouterError) else exc,
            )
            if isinstance(exc, WhizrouterError):
                log.debug("where handler %s failed", spec.name, exc_info=exc)
            await self.dead(stored, spec.name, attempt, error)
            return None
        if not isinstance(exc, HandlerTimeoutError):
            self._count(spec.name, "retry")
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
        except Exception as exc:
            self._storage_failed("record the failed attempt of", stored.key, exc)
        if self._inbox.durable:
            await self._life.pause(policy.wait_for(pause))
        else:
            # A memory inbox loses what is left: retries go on while draining.
            await anyio.sleep(policy.wait_for(pause))
        if self._life.state is LEAVING:
            self._leave(stored.seq)
            return None  # stays pending in the durable inbox, retried after the restart
        return pause

    async def _count_alone(self, seq: int) -> bool:
        """Count the run of a ``maybe_ran`` event just before it starts; False when leaving.

        Counted first, so that if this run kills the process too, the next start knows it
        happened (a crash loop ends dead). One such event at a time, from its count until its
        handler itself first waits (``before_handle`` hooks included): were several counted
        at once, a handler killing the process the moment it starts would leave the others
        counted without having run. This way a crash leaves at most the one event whose count
        was being written counted but not run. The caller releases the lock.
        """
        await self._counting.acquire()
        if self._life.state is LEAVING:
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
                    await self._life.wait_out(exc, "count the run of an event before it starts")
                    if self._life.state is LEAVING:
                        self._release_counting(seq)
                        return False
        except BaseException:
            self._release_counting(seq)
            raise
        self._counted.add(seq)
        return True

    def _release_counting(self, seq: int) -> None:
        """Let the next counted event be counted, unless ``seq`` has done so already."""
        if self._counting_seq == seq:
            self._counting_seq = -1
            self._counting.release()

    def _leave(self, seq: int) -> None:
        """The durable inbox's dispatcher leaves: the event stays with what it recorded."""
        if self._slots is not None:
            self._slots.release()
        self._left.append(seq)

    async def dead(self, stored: StoredEvent, handler: str, attempts: int, error: str) -> None:
        """Move the event to the dead letters after ``attempts`` runs of ``handler``."""
        try:
            await self._inbox.dead(stored.seq, handler=handler, attempts=attempts, error=error)
        except Exception as exc:
            self._storage_failed("dead-letter (it stays pending)", stored.key, exc)
        else:
            self.dead_lettered += 1
            self._count(handler, "dead")
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
                if self._inbox.durable
                else f"the memory inbox keeps it as dead letter {stored.seq} while the process "
                "runs (app.inbox.dead_letters(), app.inbox.replay([...]))",
                extra={
                    "event": stored.key,
                    "conversation": stored.conversation,
                    "handler": handler,
                },
            )
        self._settle(stored.seq, ack=False)

    def _storage_failed(self, doing: str, key: str, exc: Exception) -> None:
        """The inbox failed to ``doing`` event ``key``: said once every 10 s per kind."""
        if not self._storage_log.due(doing):
            log.debug("could not %s event %s: %s", doing, key, exc)
            return
        log.error(
            "could not %s event %s: %s",
            doing,
            key,
            exc,
            exc_info=None if isinstance(exc, InboxError) else exc,
        )

    def _settle(self, seq: int, *, ack: bool, write: StateWrite | None = None) -> None:
        """The one settlement of a run: it is no longer under way, nor counted; ``write``
        is the conversation state it left, committed with its ack."""
        self._running.pop(seq, None)
        if self._counted:
            self._counted.discard(seq)
        if write is None:
            self._acks.settle(seq, ack=ack)
        else:
            self._acks.settle_with_state(seq, write)
