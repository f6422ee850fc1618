"""``mark-read``: turn an incoming message's grey ticks blue once the bot has handled it.

Enable it with ``WhizRouter(plugins=["mark-read"])`` or ``app.use(MarkRead(...))``. Marking is
cosmetic, so a failure is logged and never fails the handler. On the Cloud shape, marking a
message also marks the earlier ones of that chat, so a burst of one conversation is coalesced
into one call for its newest message. Each message is marked with the key of the number that
received it (``ctx.client``), and a customer writing to two numbers is coalesced per number.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any, Literal

from whizrouter import Context, WhizardClient, WhizRouter

log = logging.getLogger("whizrouter.plugins.mark_read")

_RECENT_LIMIT = 10_000
_SHUTDOWN_SECONDS = 5.0


class MarkRead:
    """Mark each incoming message read, after its handler ran (or before, if asked).

    Args:
        when: ``"after"`` (default): once the handler finished, successfully or not;
            ``"before"``: as soon as the event is dispatched, before the handler runs.
        coalesce_window: seconds to wait for more messages of the same conversation before
            marking, on the Cloud shape only (0 disables coalescing).
    """

    name = "mark-read"

    def __init__(
        self, when: Literal["before", "after"] = "after", coalesce_window: float = 0.25
    ) -> None:
        if when not in ("before", "after"):
            raise ValueError("MarkRead(when=...) takes 'before' or 'after'")
        self.when = when
        self.coalesce_window = coalesce_window
        # By (receiving number, conversation): the newest message and the client of its number.
        self._newest: dict[tuple[str | None, str], tuple[WhizardClient, str]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._timers: dict[tuple[str | None, str], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # timers and marks not finished yet
        self.marked = 0
        self.failed = 0

    async def startup(self, app: WhizRouter) -> None:
        """Nothing to prepare."""

    async def shutdown(self, app: WhizRouter) -> None:
        """Mark what is still waiting in a coalescing window; give up after a few seconds
        (marks are cosmetic: a provider that does not answer must not hold the shutdown)."""
        try:
            await asyncio.wait_for(self.flush(app), timeout=_SHUTDOWN_SECONDS)
        except TimeoutError:
            log.warning(
                "shutdown: gave up on %d read marks after %g s", len(self._tasks), _SHUTDOWN_SECONDS
            )

    async def flush(self, app: WhizRouter) -> None:
        """Mark now what waits in a coalescing window, and wait for marks under way (the test
        kit calls this after every callback)."""
        waiting = list(self._timers.values())
        for task in waiting:
            task.cancel()
        pending = list(self._newest.values())
        self._newest.clear()
        self._timers.clear()
        # Marks under way (timers past their wait included): let them finish.
        under_way = [task for task in self._tasks if task not in waiting]
        if under_way:
            await asyncio.gather(*under_way, return_exceptions=True)
        for client, message_id in pending:
            await self._mark(client, message_id)

    async def before_handle(self, event: Any, ctx: Context) -> None:
        """Mark now when configured ``when="before"``."""
        if self.when == "before":
            await self._schedule(ctx)

    async def after_handle(self, event: Any, ctx: Context) -> None:
        """Mark after a successful handler run."""
        if self.when == "after":
            await self._schedule(ctx)

    async def on_error(self, event: Any, ctx: Context, exc: BaseException) -> None:
        """Mark after a failed run too: the customer's message did reach the bot."""
        if self.when == "after":
            await self._schedule(ctx)

    async def _schedule(self, ctx: Context) -> None:
        if ctx.kind != "message" or ctx.message_id is None:
            return
        if ctx.message_id in self._recent:
            return  # a retried handler: this message was marked on an earlier attempt
        self._recent[ctx.message_id] = None
        if len(self._recent) > _RECENT_LIMIT:
            self._recent.popitem(last=False)
        if self.coalesce_window <= 0 or ctx.client.shape != "cloud":
            if self.when == "before":  # the promise: marked before the handler starts
                await self._mark(ctx.client, ctx.message_id)
            else:
                # In the background: the client retries a failing mark for up to about a
                # minute, and the conversation's next message must not wait for that.
                self._spawn(self._mark(ctx.client, ctx.message_id))
            return
        chat = (ctx.number, ctx.conversation)
        self._newest[chat] = (ctx.client, ctx.message_id)
        if chat not in self._timers:
            self._timers[chat] = self._spawn(self._flush_later(chat))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _flush_later(self, chat: tuple[str | None, str]) -> None:
        await asyncio.sleep(self.coalesce_window)
        self._timers.pop(chat, None)
        newest = self._newest.pop(chat, None)
        if newest is not None:
            await self._mark(*newest)

    async def _mark(self, client: WhizardClient, message_id: str) -> None:
        try:
            await client.mark_read(message_id)
        except Exception as exc:
            self.failed += 1
            log.warning("could not mark message %s read: %s", message_id, exc)
        else:
            self.marked += 1
