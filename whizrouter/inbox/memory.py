"""The ``memory`` inbox: fastest, and lost when the process ends.

Use it for tests and for bots that can afford to lose acknowledged events on a crash; the
durable default is ``sqlite``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Any

from whizrouter.defaults import DEFAULT_DEDUPE_SECONDS, DEFAULT_MAX_BACKLOG
from whizrouter.errors import InboxFullError
from whizrouter.inbox.base import (
    DONE,
    DeadLetter,
    Inbox,
    JournalEntry,
    RawEvent,
    StoredEvent,
    build_stored_event,
)
from whizrouter.inbox.stored_state import StateWrite, StoredState, without_orphans


class MemoryInbox(Inbox):
    """An in-process inbox with the same contract as the durable ones, minus durability.

    Args:
        max_backlog: unsettled events above which ``append`` refuses with ``InboxFullError``.
        dedupe_seconds: how long a dedupe key is remembered.
    """

    description = "memory"
    durable = False
    keeps_state = True

    def __init__(
        self,
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
    ) -> None:
        self._max_backlog = max_backlog
        self._dedupe_seconds = dedupe_seconds
        self._seq = 0
        self._ready: deque[StoredEvent] = deque()
        self._claimed: dict[int, StoredEvent] = {}
        self._dead: dict[int, DeadLetter] = {}
        # Dedupe keys for look-ups, and the same keys oldest first for pruning: popping the
        # front of a dict (next(iter(...))) gets slower with every key deleted before it.
        self._seen: set[str] = set()
        self._seen_order: deque[tuple[float, str]] = deque()
        self._wakeup = asyncio.Event()
        # The send journal: entries by event key, then by slot (``whizrouter.send_journal``).
        self._journal: dict[str, dict[str, JournalEntry]] = {}
        # Conversation state: committed at settlement (``ack_with_state``).
        self._states: dict[str, StoredState] = {}
        self._next_expiry = time.time() + 300.0

    async def open(self) -> None:
        """Nothing to prepare in memory."""

    async def close(self) -> None:
        """Wake any waiting ``claim`` so it can notice cancellation; events stay in memory."""
        self._wakeup.set()

    def _prune_seen(self, now: float) -> None:
        horizon = now - self._dedupe_seconds
        order, seen = self._seen_order, self._seen
        while order and order[0][0] < horizon:
            seen.discard(order.popleft()[1])

    async def append(self, events: Sequence[RawEvent]) -> int:
        """Store new events, drop those whose key was seen; see ``Inbox.append``."""
        backlog = len(self._ready) + len(self._claimed)
        # An empty inbox takes any callback, however many events: none is refused forever.
        if backlog and backlog + len(events) > self._max_backlog:
            raise InboxFullError(
                f"the memory inbox holds {backlog} unsettled events (bound "
                f"{self._max_backlog}); the provider will retry, or raise max_backlog"
            )
        now = time.time()
        order = self._seen_order
        if order and order[0][0] < now - self._dedupe_seconds:
            self._prune_seen(now)
        seen = self._seen
        ready = self._ready
        stored = 0
        for event in events:
            key = event.key
            if key in seen:
                continue  # a redelivery, or the same event twice in this callback
            seen.add(key)
            order.append((now, key))
            # What _queue does, inline: this runs for every event stored.
            self._seq += 1
            ready.append(
                build_stored_event(
                    self._seq, event.kind, key, event.conversation, event.body, 0, now
                )
            )
            stored += 1
        if stored:
            self._wakeup.set()
        return stored

    def _queue(self, event: RawEvent, now: float) -> None:
        self._seq += 1
        self._ready.append(
            build_stored_event(
                self._seq, event.kind, event.key, event.conversation, event.body, 0, now
            )
        )

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Wait for ready events and hand out up to ``limit`` of them in arrival order."""
        while not self._ready:
            if self._wakeup.is_set():
                self._wakeup = asyncio.Event()
            await self._wakeup.wait()
        batch: list[StoredEvent] = []
        while self._ready and len(batch) < limit:
            event = self._ready.popleft()
            self._claimed[event.seq] = event
            batch.append(event)
        return batch

    async def ack(self, seqs: Sequence[int]) -> None:
        """Forget settled events, and their send journal."""
        journal = self._journal
        for seq in seqs:
            event = self._claimed.pop(seq, None)
            if journal and event is not None:
                journal.pop(event.key, None)

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Keep the attempt count on the claimed event."""
        event = self._claimed.get(seq)
        if event is not None:
            self._claimed[seq] = replace(event, attempts=attempts)

    async def dead(self, seq: int, *, handler: str, attempts: int, error: str) -> None:
        """Move a claimed event to the dead letters."""
        event = self._claimed.pop(seq, None)
        if event is None:
            return
        self._dead[seq] = DeadLetter(
            seq=seq,
            kind=event.kind,
            key=event.key,
            conversation=event.conversation,
            body=event.body,
            handler=handler,
            attempts=attempts,
            error=error,
            died_at=time.time(),
        )

    def backlog(self) -> int:
        """Events appended and not yet settled."""
        return len(self._ready) + len(self._claimed)

    async def oldest_waiting(self) -> float | None:
        """When the oldest unsettled event was stored; see ``Inbox.oldest_waiting``."""
        # Claimed events stay in claim order, which is seq order: the first is the oldest.
        firsts = [next(iter(self._claimed.values()), None), self._ready[0] if self._ready else None]
        times = [event.received_at for event in firsts if event is not None]
        return min(times) if times else None

    async def stats(self) -> dict[str, int]:
        """Counts by state."""
        return {
            "pending": self.backlog(),
            "dead": len(self._dead),
            "seen": len(self._seen),
        }

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters."""
        return list(self._dead.values())[:limit]

    async def replay(self, seqs: Sequence[int] | None = None) -> int:
        """Queue dead letters again, with a fresh attempt count and a new seq."""
        chosen = list(self._dead) if seqs is None else [s for s in seqs if s in self._dead]
        now = time.time()
        for seq in chosen:
            letter = self._dead.pop(seq)
            self._queue(RawEvent(letter.kind, letter.key, letter.conversation, letter.body), now)
        if chosen:
            self._wakeup.set()
        return len(chosen)

    async def drop(self, seqs: Sequence[int]) -> int:
        """Delete dead letters, and their send journal."""
        dropped = 0
        for seq in seqs:
            letter = self._dead.pop(seq, None)
            if letter is not None:
                self._journal.pop(letter.key, None)
                dropped += 1
        return dropped

    async def journal_entries(self, event_key: str) -> dict[str, JournalEntry]:
        """The event's journaled sends (a copy)."""
        return dict(self._journal.get(event_key, {}))

    def journal_record(self, event_key: str, slot: str, entry: JournalEntry) -> Awaitable[None]:
        """Keep a journaled send until the event is acknowledged or its dead letter dropped."""
        self._journal.setdefault(event_key, {})[slot] = entry
        return DONE

    # -- conversation state ----------------------------------------------------------------

    async def load_state(self, conversation: str) -> StoredState | None:
        """The conversation's state, unless it expired (``state_ttl`` after its last write)."""
        return self.cached_state(conversation)

    def cached_state(self, conversation: str) -> StoredState | None:
        """``load_state``, without a coroutine: the dict is all there is."""
        stored = self._states.get(conversation)
        if stored is not None and stored.updated_at < time.time() - self.state_ttl:
            del self._states[conversation]
            return None
        return stored

    async def ack_with_state(self, seqs: Sequence[int], writes: Sequence[StateWrite]) -> None:
        """Apply the state writes, then forget the settled events (nothing can fail between)."""
        seqs, writes = without_orphans(seqs, writes)
        states = self._states
        now = time.time()
        if now >= self._next_expiry:  # forget expired states now and then, not only on reads
            self._next_expiry = now + 300.0
            horizon = now - self.state_ttl
            for conversation in [c for c, s in states.items() if s.updated_at < horizon]:
                del states[conversation]
        for write in writes:
            if write.state is None and not write.data:
                states.pop(write.conversation, None)
            else:
                write.updated_at = now
                states[write.conversation] = write  # a write is the record it leaves
        await self.ack(seqs)

    async def put_state(self, conversation: str, state: str | None, data: dict[str, Any]) -> None:
        """Set (or, with None and no data, delete) a conversation's state."""
        if state is None and not data:
            self._states.pop(conversation, None)
        else:
            self._states[conversation] = StoredState(state, dict(data), 0, time.time())
