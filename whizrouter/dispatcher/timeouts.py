"""The handler timeouts: a run past its timeout is cancelled and counted as a failure.

No timer per run: ``Attempts.run`` notes when each run is due and which worker task runs it
(in ``_deadlines``, inline, on the hot path), and the dispatcher calls ``cancel_overdue``
about once a second to cancel the runs past it. ``_cut_at_timeout`` then tells the run path
whether a cancellation was this one (to be taken back and retried as a
``HandlerTimeoutError``) or another, such as a stop's.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from time import monotonic
from typing import Any

#: The task of the worker running the current handler: found once per worker, since
#: ``asyncio.current_task`` is a Python function call (before 3.12) and a run needs it only
#: in case it must be cancelled at its timeout. Each worker task has its own context: this
#: holds as long as runs are awaited by the lanes' workers themselves, not by tasks they start
#: (which would inherit the worker's value).
WORKER: ContextVar[asyncio.Task[Any] | None] = ContextVar("whizrouter_worker", default=None)


def remember_worker() -> asyncio.Task[Any]:
    """The current task, remembered in ``WORKER`` for the next runs of this worker."""
    task = asyncio.current_task()
    assert task is not None  # runs are awaited in a task
    WORKER.set(task)
    return task


class HandlerTimeouts:
    """The timeouts of handler runs, mixed into ``Attempts``, whose run path fills them.

    Args:
        handler_timeout: seconds a run of a handler without its own ``timeout`` may take.
    """

    def __init__(self, handler_timeout: float) -> None:
        self._timeout = handler_timeout
        # Runs under way by seq: (when they are due, their task), for ``cancel_overdue``;
        # and the seqs it cancelled, to tell its cancellation from a stop's.
        self._deadlines: dict[int, tuple[float, asyncio.Task[Any]]] = {}
        self._timed_out: set[int] = set()

    def _cut_at_timeout(self, seq: int, task: asyncio.Task[Any]) -> bool:
        """Whether the run of ``seq`` was cancelled by ``cancel_overdue`` alone (then its
        cancellation is taken back); False for any other cancellation, such as a stop's."""
        if seq not in self._timed_out:
            return False
        self._timed_out.discard(seq)
        return task.uncancel() == 0

    def cancel_overdue(self) -> None:
        """Cancel every run past its timeout; the dispatcher calls it about once a second."""
        now = monotonic()
        for seq, (due, task) in self._deadlines.items():
            if due <= now and seq not in self._timed_out:
                self._timed_out.add(seq)
                task.cancel()
