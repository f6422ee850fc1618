"""``StateOverlay``: conversation state settled by the dispatcher but not committed yet.

Acks are batched: a handler's state write is committed with its event's acknowledgement by
the ack flusher, a moment after the handler returned. The next event of the same conversation
may start before that; it must see the write all the same. The overlay keeps each
conversation's newest settled write until its commit, and ``load`` looks there first.

If the commit fails, the write is dropped here too: the event stays unsettled in the inbox, and
a restart runs it again from the state as it was, which is what the inbox holds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from whizrouter.conversation_state import ConversationState
from whizrouter.errors import ConfigurationError
from whizrouter.inbox.base import Inbox, StoredEvent
from whizrouter.inbox.stored_state import NotCached, StateWrite, StoredState
from whizrouter.log_throttle import LogThrottle

log = logging.getLogger("whizrouter.dispatcher")


class StateOverlay:
    """Settled, uncommitted state writes by conversation, in front of the inbox's state.

    Args:
        inbox: where committed state is read.
    """

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        #: Conversation -> its newest settled write not committed yet (``Acks`` adds them).
        self.pending_writes: dict[str, StateWrite] = {}
        #: The conversation's newest settled write not committed yet, or None.
        self.pending: Callable[[str], StateWrite | None] = self.pending_writes.get
        self._keeps_state = inbox.keeps_state
        self._failure_log = LogThrottle()
        #: The conversation's committed state: the inbox's own method, one frame less per read.
        self.load: Callable[[str], Awaitable[StoredState | None]] = inbox.load_state
        #: The same when the inbox has it in memory, without a coroutine, else ``NOT_CACHED``.
        self.cached: Callable[[str], StoredState | NotCached | None] = inbox.cached_state

    def handle(self, stored: StoredEvent) -> ConversationState:
        """A fresh ``ctx.state`` for a run of ``stored``.

        Raises:
            ConfigurationError: the inbox keeps no conversation state.
        """
        if not self._keeps_state:
            raise ConfigurationError(
                f"ctx.state needs an inbox that keeps conversation state; "
                f"{self._inbox.description} does not: use 'memory', 'sqlite:///...' or "
                "'nats://...'"
            )
        replayed = stored.maybe_ran or stored.attempts > 0
        return ConversationState(self, stored.conversation, stored.seq, replayed)

    def committed(self, writes: Sequence[StateWrite]) -> None:
        """The batch holding ``writes`` was committed (or failed): the inbox has the last
        word again, unless a newer write of the conversation is on its way."""
        pending = self.pending_writes
        failed: list[StateWrite] = []
        for write in writes:
            # Its base is settled now: dropping the link keeps a busy conversation's writes
            # from chaining up in memory.
            write.after = None
            if pending.get(write.conversation) is write:
                del pending[write.conversation]
            if write.failed:
                failed.append(write)
        if failed and self._failure_log.due():
            log.warning(
                "%d state writes were not committed (the record changed meanwhile, or the "
                "state they read was not committed), the first of conversation %s; their "
                "events are handled again from the state the inbox holds (%d such lines "
                "held back)",
                len(failed),
                failed[0].conversation,
                self._failure_log.held_back(),
            )
