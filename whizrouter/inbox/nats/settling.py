"""Settling what a NATS worker holds: acks, failed runs, dead letters, and a clean stop.

An ack or a termination waits for JetStream's reply, so a settled event never comes back. A
failed run is counted in the ``RUNS`` bucket and keeps the event from being redelivered while
it waits for its retry. At a clean stop the app says which claimed events never reached a
handler; the rest were cut short, and each gets a run counted, while every event handed back
gets its delivery spared (see ``whizrouter.inbox.nats.spared``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import nats.errors
from nats.aio.msg import Msg

from whizrouter.errors import InboxError
from whizrouter.inbox.nats.backlog import Backlog
from whizrouter.inbox.nats.connection import Connection
from whizrouter.inbox.nats.dead import DeadLetterStream
from whizrouter.inbox.nats.partitions import PartitionWorker
from whizrouter.inbox.nats.spared import add_one, set_count
from whizrouter.inbox.nats.streams import Buckets

# The inbox's logger: moving code between modules must not change what operators filter on.
logger = logging.getLogger("whizrouter.inbox.nats")

#: Seconds to wait for JetStream to confirm a settlement.
_SETTLE_TIMEOUT = 5.0


class Settler:
    """Settles the events a ``PartitionWorker`` holds, for one open inbox.

    Args:
        worker: the inbox's partition worker, which holds the fetched messages.
        connection: the inbox's connection.
        dead: the dead-letter stream.
        buckets: returns the open KV buckets.
        backlog: the inbox's backlog, told how many events were settled.
        ack_wait: seconds after which JetStream redelivers; a dead letter that could not be
            stored comes round again after that long.
        description: the inbox's description, for logs.
    """

    def __init__(
        self,
        worker: PartitionWorker,
        connection: Connection,
        dead: DeadLetterStream,
        *,
        buckets: Callable[[], Buckets],
        backlog: Backlog,
        ack_wait: float,
        description: str,
    ) -> None:
        self._worker = worker
        self._connection = connection
        self._dead = dead
        self._buckets = buckets
        self._backlog = backlog
        self._ack_wait = ack_wait
        self._description = description
        self._unstarted: set[int] = set()  # claimed events the app said never started
        self._released = False  # the app said which claimed events never started

    async def ack(self, seqs: Sequence[int]) -> None:
        """Settle events, and return once JetStream confirmed it (they never come back)."""
        await self._settle(seqs, Msg.Ack.Ack)

    async def hand_back(self, seqs: Sequence[int]) -> None:
        """Give events back to JetStream to be delivered again now (a refused state write)."""
        for seq in seqs:
            held = self._worker.held.pop(seq, None)
            if held is not None:
                with contextlib.suppress(nats.errors.Error):
                    await held.msg.nak()

    async def record_attempt(self, seq: int, attempts: int) -> None:
        """Count the failed runs, and tell JetStream the event is still being worked on."""
        held = self._worker.held.get(seq)
        if held is not None:
            try:
                await held.msg.in_progress()
                await set_count(self._buckets().runs, seq, attempts)
            except nats.errors.Error as exc:
                raise InboxError(f"cannot reach NATS: {exc}") from exc

    async def dead(self, seq: int, *, handler: str, attempts: int, error: str) -> None:
        """Store the event in the dead-letter stream, then terminate its delivery."""
        held = self._worker.held.get(seq)
        if held is None:
            return
        try:
            await self._dead.store(held.event, handler=handler, attempts=attempts, error=error)
        except nats.errors.Error as exc:
            # Hand it back rather than keep it claimed forever: it comes round again later.
            self._worker.held.pop(seq, None)
            with contextlib.suppress(nats.errors.Error):
                await held.msg.nak(delay=self._ack_wait)
            raise InboxError(f"cannot store dead letter {seq} in NATS: {exc}") from exc
        await self._settle([seq], Msg.Ack.Term)

    async def count_run(self, seq: int) -> None:
        """Count a handler run of a ``maybe_ran`` event before it starts."""
        try:
            await add_one(self._buckets().runs, [seq])
        except nats.errors.Error as exc:
            raise InboxError(f"cannot reach NATS: {exc}") from exc

    async def _settle(self, seqs: Sequence[int], verdict: bytes) -> None:
        nc = self._connection.client
        held = [h for h in (self._worker.held.pop(seq, None) for seq in seqs) if h is not None]
        if nc is None or not held:
            return
        replies = await asyncio.gather(
            *(nc.request(h.msg.reply, verdict, timeout=_SETTLE_TIMEOUT) for h in held),
            return_exceptions=True,
        )
        self._backlog.changed(-len(held))
        failed = [r for r in replies if isinstance(r, BaseException)]
        if failed:
            raise InboxError(
                f"NATS did not confirm settling {len(failed)} of {len(held)} events "
                f"({failed[0]!r}); JetStream redelivers them after ack_wait"
            ) from failed[0]

    def release(self, unstarted: Sequence[int]) -> None:
        """The app stops cleanly: claimed events in ``unstarted`` never reached a handler (or
        their run is counted already); the other claimed ones were cut short."""
        self._released = True
        self._unstarted.update(unstarted)

    async def record_hand_back(self) -> None:
        """Before the worker hands its events back: spare each one's delivery, and count a
        run for each one cut short. Bounded: a dead server must not hang shutdown."""
        held = self._worker.held
        unstarted = [s for s, h in held.items() if not h.claimed or s in self._unstarted]
        # Known to have started only when the app said which did not (a clean stop).
        cut_short = (
            [s for s, h in held.items() if h.claimed and s not in self._unstarted]
            if self._released
            else []
        )
        if not (unstarted or cut_short):
            return
        try:
            buckets = self._buckets()
            await asyncio.wait_for(
                asyncio.gather(
                    add_one(buckets.runs, cut_short), add_one(buckets.spared, unstarted + cut_short)
                ),
                timeout=5.0,
            )
        except Exception as exc:  # the next start treats them as possibly started
            logger.warning(
                "NATS inbox %s: could not record how %d handed-back events stand: %s",
                self._description,
                len(unstarted) + len(cut_short),
                exc,
            )
