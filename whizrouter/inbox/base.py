"""The inbox contract: where acknowledged events wait until a handler has settled them.

The receiver calls ``append`` and answers 200 only after it returned; the dispatcher calls
``claim`` and settles every claimed event with exactly one of ``ack`` or ``dead`` (after zero
or more ``record_attempt``). Backends: ``memory`` (this package), ``sqlite`` (durable, the
default) and ``nats`` (JetStream, several processes).

Beside those, the protocol declares the capabilities a durable backend adds, each with a
documented no-op default that a backend inherits by subclassing ``Inbox``: ``count_run``
(before the dispatcher starts a ``maybe_ran`` event), ``release`` (at a clean stop),
``take_consumer_lock`` (at startup), ``health`` (fields for ``GET /healthz``), ``on_lost``
(set by the app: called when the storage is gone for good), the send journal's
``journal_entries`` and ``journal_record`` (``whizrouter.send_journal``), and conversation
state (``keeps_state``, ``state_ttl``, ``load_state``, ``ack_with_state``, ``put_state``). The
app and the dispatcher call them on every inbox; nothing probes an inbox for what it has.
Everything the app, the receiver, the dispatcher and the CLI do with an inbox goes through
this protocol, except two settings of concrete backends that only the inspection commands use
(a ``SqliteInbox``'s ``path`` must exist, a ``NatsInbox`` with ``create_streams`` False
creates no stream).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast, runtime_checkable

from whizrouter.defaults import DEFAULT_STATE_TTL
from whizrouter.errors import InboxError
from whizrouter.inbox.stored_state import NOT_CACHED, NotCached, StateWrite, StoredState

EventKind = Literal["message", "status", "raw"]

__all__ = [
    "DONE",
    "DeadLetter",
    "EventKind",
    "Inbox",
    "JournalEntry",
    "LostCallback",
    "RawEvent",
    "StoredEvent",
    "build_stored_event",
]

#: What the app gives ``Inbox.on_lost``: called with the error once storage is gone for good.
LostCallback = Callable[[InboxError], None]


# RawEvent is built for every event of every callback (``whizrouter.payloads``), and a frozen
# dataclass costs more to build: its __init__ sets each field through object.__setattr__.
# Measured with callgrind on CPython 3.11: building one costs about 4,000 instructions plain
# and 9,100 frozen, 5,100 more per event: a sixth more than parsing and splitting a
# one-message callback, 1.5 % of all the memory-inbox server spends on one. So it stays a
# plain slotted dataclass; nothing changes one after it is built (the sqlite writer thread
# reads the events of an append while the event loop goes on).
@dataclass(slots=True)
class RawEvent:
    """One event split out of a callback, as the receiver stores it. Treat it as read-only.

    Attributes:
        kind: ``message``, ``status`` or ``raw`` (anything else the provider sent).
        key: the dedupe key (``m:<id>``, ``s:<id>:<status>``, ``r:<sha256>``).
        conversation: the ordering unit: a contact's ``wa_id`` (or a status' ``recipient_id``).
        body: the event body as JSON bytes (its format: ``whizrouter.stored_body``).
    """

    kind: EventKind
    key: str
    conversation: str
    body: bytes


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event the inbox holds, as handed to the dispatcher by ``claim``; immutable.

    Backends build one per event with ``build_stored_event`` (see there why), and a changed
    copy with ``dataclasses.replace``.

    Attributes:
        seq: the inbox's own id for the event; increases in arrival order.
        attempts: handler runs known to have started on this event and not succeeded:
            failed runs, and runs cut short by a crash or a stop (0 on first claim).
        received_at: Unix time at which ``append`` stored it.
        maybe_ran: the previous process had taken the event when it crashed, so a handler
            may have started on it without that run being counted in ``attempts``. The
            dispatcher counts the next run (``Inbox.count_run``) before it starts it.
    """

    seq: int
    kind: EventKind
    key: str
    conversation: str
    body: bytes
    attempts: int = 0
    received_at: float = 0.0
    maybe_ran: bool = False


@dataclass(slots=True)
class _StoredEventDraft:
    """StoredEvent's fields in StoredEvent's order, mutable: ``build_stored_event`` only."""

    seq: int
    kind: EventKind
    key: str
    conversation: str
    body: bytes
    attempts: int
    received_at: float
    maybe_ran: bool


_set_attribute = object.__setattr__


def build_stored_event(
    seq: int,
    kind: EventKind,
    key: str,
    conversation: str,
    body: bytes,
    attempts: int = 0,
    received_at: float = 0.0,
    maybe_ran: bool = False,
) -> StoredEvent:
    """``StoredEvent(...)`` at half the cost, for the paths that build one per event.

    StoredEvent's frozen ``__init__`` sets its eight fields through ``object.__setattr__``:
    measured with callgrind on CPython 3.11, building one costs about 14,800 instructions,
    against 4,700 for a plain slotted dataclass, which made a one-message callback cost the
    memory-inbox server 3 % more. This builds the same fields as a plain slotted draft,
    then turns it into a StoredEvent (both classes have the same slots in the same order, so
    Python allows the ``__class__`` assignment): about 7,100 instructions. The result is an
    ordinary, frozen StoredEvent, equal to one the constructor builds.
    """
    event = _StoredEventDraft(seq, kind, key, conversation, body, attempts, received_at, maybe_ran)
    _set_attribute(event, "__class__", StoredEvent)
    return cast(StoredEvent, event)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event whose handler kept failing, kept for inspection and replay."""

    seq: int
    kind: EventKind
    key: str
    conversation: str
    body: bytes
    handler: str
    attempts: int
    error: str
    died_at: float


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journaled send: the hash of its request and the message id the provider returned."""

    request_hash: str
    message_id: str


class _Done:
    """An awaitable with nothing to wait for: a write kept in memory, or not kept at all."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator, so that awaiting it returns at once


#: What ``journal_record`` returns when the record is as durable as it will be.
DONE: Awaitable[None] = _Done()


@runtime_checkable
class Inbox(Protocol):
    """What every inbox backend provides.

    ``append`` is all-or-nothing for its own events and returns only once they are as durable
    as the backend promises; an event whose key was seen within the dedupe window is dropped
    (and counted out of the return value). ``claim`` waits until at least one event is ready
    and returns each event at most once per process lifetime until it is settled; events of
    one conversation come out in the order they were appended. ``close`` leaves unsettled
    events in place for the next ``open`` (a durable backend replays them).
    """

    #: A short description for logs, without secrets (``sqlite:///inbox.db``, ``memory``).
    description: str
    #: Whether an acknowledged event survives the process being killed.
    durable: bool

    async def open(self) -> None:
        """Prepare storage; replay nothing yet (``claim`` does that)."""
        ...

    async def close(self) -> None:
        """Flush and release storage; unsettled events stay for the next ``open``."""
        ...

    async def append(self, events: Sequence[RawEvent]) -> int:
        """Store events durably; return how many were new (not duplicates).

        Raises:
            InboxFullError: the backlog would pass the bound; nothing was stored. An empty
                inbox takes any number of events, so no callback is refused forever.
            InboxError: the events could not be stored; nothing was stored.
        """
        ...

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Wait for ready events and return up to ``limit`` of them, oldest first."""
        ...

    async def ack(self, seqs: Sequence[int]) -> None:
        """Settle events whose handling finished (or that no handler wanted)."""
        ...

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Remember that ``attempts`` handler runs failed so far, the last with ``error``."""
        ...

    async def dead(self, seq: int, *, handler: str, attempts: int, error: str) -> None:
        """Move an event to the dead letters after its handler failed ``attempts`` times."""
        ...

    def backlog(self) -> int:
        """Events stored and not yet settled, as known to this process (cheap, no I/O)."""
        ...

    async def stats(self) -> dict[str, int]:
        """Counts by state: ``pending``, ``dead``, ``seen`` (remembered dedupe keys)."""
        ...

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters, up to ``limit``."""
        ...

    async def replay(self, seqs: Sequence[int] | None = None) -> int:
        """Put dead letters back to be handled (all when ``seqs`` is None); return how many."""
        ...

    async def drop(self, seqs: Sequence[int]) -> int:
        """Delete dead letters for good; return how many were deleted."""
        ...

    # Capabilities of durable backends, with the no-op defaults that fit every other one.

    #: Set by the app before ``open``: a backend whose storage is gone for good (a NATS
    #: connection closed without reconnecting) calls it, and the app stops. None: nobody asks.
    on_lost: LostCallback | None = None

    async def count_run(self, seq: int) -> None:
        """Count a handler run of a ``maybe_ran`` event just before it starts.

        The dispatcher awaits it before it runs such an event, so that a run that kills the
        process again is known at the next start (a crash loop ends dead). Default: nothing
        to count, for a backend that never hands out ``maybe_ran`` events.
        """
        return None  # a body of its own: a default, not a method to implement

    async def release(self, unstarted: Sequence[int]) -> None:
        """The consumer stops cleanly: claimed events in ``unstarted`` never reached a handler.

        The app calls it once the dispatcher has drained, so that those events count no
        attempt at the next start. Default: nothing, for a backend that keeps nothing.
        """
        return None  # a body of its own: a default, not a method to implement

    async def take_consumer_lock(self) -> None:
        """Take the storage for this process's consumer now, not at the first ``claim``.

        The app awaits it at startup (except in the receiver role), so a second bot on the
        same storage stops before it listens. Default: nothing, storage that is not shared.

        Raises:
            InboxError: another consumer holds the storage; the message names it.
        """
        return None  # a body of its own: a default, not a method to implement

    async def oldest_waiting(self) -> float | None:
        """When (Unix time) the oldest unsettled event was stored, or None when none waits
        or the backend cannot tell cheaply; the metrics' ``oldest_event_age_seconds``.
        Default: None, for a backend that cannot tell."""
        return None  # a body of its own: a default, not a method to implement

    def health(self) -> dict[str, object]:
        """Fields for ``GET /healthz`` that only this backend knows (default: none).

        A ``connected`` field of False makes the app report itself unavailable.
        """
        return {}

    async def journal_entries(self, event_key: str) -> dict[str, JournalEntry]:
        """The send journal of an event: its recorded sends by slot (``#1``, ``k:<key>``).

        Called at the first journaled send of an event's run in a process. A backend answers
        from memory, without I/O, for an event it knows has none (a first run), so a first
        run pays only ``journal_record``. Default: an empty journal, for a backend that keeps
        none (every run then sends again).
        """
        return {}

    def journal_record(self, event_key: str, slot: str, entry: JournalEntry) -> Awaitable[None]:
        """Record a send the provider accepted; awaiting the result waits until it is durable.

        Not a coroutine: the write is under way (or buffered) when this returns, and the send
        returns to the handler without waiting. The journal awaits the result (at most once)
        before the run's next send that must reach the provider; the backend itself makes
        sure an ``ack`` of the event never takes effect before its records. Replaces an entry
        of the same slot. The backend deletes an event's entries in the commit that
        acknowledges it (``ack``) and when its dead letter is dropped; a dead letter keeps
        them for its replay. Default: nothing kept (``DONE``).
        """
        return DONE

    # Conversation state (``ctx.state``): a backend that keeps it sets ``keeps_state`` and
    # implements the three methods; the defaults keep none, and ``ctx.state`` then refuses.

    #: Whether ``load_state``, ``ack_with_state`` and ``put_state`` work.
    keeps_state: bool = False
    #: Seconds a conversation's state lives after its last write; the app sets it before
    #: ``open`` (``WhizRouter(state_ttl=...)``).
    state_ttl: float = DEFAULT_STATE_TTL

    async def load_state(self, conversation: str) -> StoredState | None:
        """The conversation's committed state, or None (none, or expired).

        Default: None, for a backend that keeps no state.
        """
        return None  # a body of its own: a default, not a method to implement

    def cached_state(self, conversation: str) -> StoredState | NotCached | None:
        """``load_state``'s answer when the backend has it in memory, without a coroutine
        (``ctx.state`` reads it on every event that uses it), else ``NOT_CACHED``.

        Default: ``NOT_CACHED``: always ask ``load_state``.
        """
        return NOT_CACHED

    async def ack_with_state(self, seqs: Sequence[int], writes: Sequence[StateWrite]) -> None:
        """``ack`` the events and commit the state their handlers left, together: both or
        neither (sqlite: one transaction; NATS: each write checked against the revision its
        handler read, before the ack). ``writes`` are in settlement order, several per
        conversation possible; the backend sets each one's ``revision``, or ``failed`` when
        it refused it (the record changed meanwhile: that event is handed out again instead
        of acknowledged).

        Default: refuses, for a backend that keeps no state (``keeps_state`` False; the
        dispatcher never calls it then).

        Raises:
            InboxError: nothing was committed; the events stay unsettled.
        """
        raise InboxError(f"the inbox {self.description} keeps no conversation state")

    async def put_state(self, conversation: str, state: str | None, data: dict[str, Any]) -> None:
        """Write a conversation's state outside any event (the CLI, a test's preset); None
        and no data delete it.

        Default: refuses, for a backend that keeps no state.

        Raises:
            InboxError: the backend keeps no state, or the write failed.
        """
        raise InboxError(f"the inbox {self.description} keeps no conversation state")
