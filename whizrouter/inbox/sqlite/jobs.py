"""What the sqlite inbox's writer thread runs: one ``Job`` per operation, and the way back.

A job is created on the event loop thread and queued; the writer thread runs it inside a
commit group and resolves its asyncio future through ``loop.call_soon_threadsafe``, so no
caller ever blocks the loop and no sqlite call runs on it. ``Signal`` is the same way back for
the writer's own start and stop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from whizrouter.inbox.base import RawEvent

_T = TypeVar("_T")


class Job(Generic[_T]):
    """One caller's operation, run by the writer thread inside the current group.

    Created on the event loop thread, whose loop then resolves ``future``.

    Args:
        fn: the work, given the writer's connection inside an open transaction.
        on_commit: runs on the writer thread with the result, once the group committed.
        on_abandon: runs on the loop thread with the result, when the caller was cancelled
            while the job ran (so a result that must not be lost can be put back).
        readonly: the job only reads; a group of such jobs needs no write lock.
        batch: the events of an append, merged with the group's other appends on the fast
            path; ``fn`` stores them alone when the group runs job by job.
    """

    __slots__ = (
        "batch", "error", "fn", "future", "loop", "on_abandon", "on_commit", "readonly", "result"
    )  # fmt: skip

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], _T],
        on_commit: Callable[[_T], None] | None,
        on_abandon: Callable[[_T], None] | None,
        readonly: bool,
        batch: list[RawEvent] | None,
    ) -> None:
        self.fn = fn
        self.on_commit = on_commit
        self.on_abandon = on_abandon
        self.readonly = readonly
        self.batch = batch
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[_T] = self.loop.create_future()
        self.result: _T | None = None
        self.error: BaseException | None = None


class Signal:
    """A future for the loop thread that another thread resolves."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()

    def resolve(self, error: BaseException | None = None) -> None:
        """Resolve from the writer thread, with ``error`` if it failed."""
        self.loop.call_soon_threadsafe(resolve, self.future, None, error)


class Stop(Signal):
    """Queued last: the writer finishes the jobs before it, closes the connection, exits."""


def resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Set ``future``'s result, or its exception if ``error``; a done future stays as it is."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SubmitsJobs:
    """What the sqlite inbox's mixins (``appends``, ``dead_letters``) call on the inbox: its
    ``_submit``, which queues a ``Job`` on the writer thread and waits for its result."""

    async def _submit(
        self,
        fn: Callable[[sqlite3.Connection], _T],
        on_commit: Callable[[_T], None] | None = None,
        *,
        readonly: bool = False,
        on_abandon: Callable[[_T], None] | None = None,
        batch: list[RawEvent] | None = None,
    ) -> _T:
        raise NotImplementedError  # the inbox's own: a job for its writer thread
