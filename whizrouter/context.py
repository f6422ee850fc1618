"""``Context``: what a handler gets beside the event.

It names the conversation, carries the provider client, the attempt number and per-event
state that plugins and handlers share under typed ``ContextKey``s, and the conversation's
state (``ctx.state``). Its client is a view of the app's whose sends go through the event's
send journal (``whizrouter.send_journal``), built at the first use, so a handler that sends
nothing pays nothing for it. The shortcuts a handler answers with (``reply_*``, ``react``,
``download``, ``typing``, ...) are in ``whizrouter.reply_shortcuts``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from whizrouter.errors import ConfigurationError
from whizrouter.numbers import number_of
from whizrouter.reply_shortcuts import ReplyShortcuts

if TYPE_CHECKING:
    from whizrouter.client import WhizardClient
    from whizrouter.conversation_state import ConversationState
    from whizrouter.dispatcher.state_overlay import StateOverlay
    from whizrouter.events import Contact
    from whizrouter.inbox.base import StoredEvent
    from whizrouter.send_journal import SendJournal, SendJournals

T = TypeVar("T")
D = TypeVar("D")


class ContextKey(Generic[T]):
    """A typed key for per-event state: ``ctx[KEY] = value`` keeps its type for mypy.

    Args:
        name: a unique, descriptive name (``"mark_read.done"``), shown in errors and reprs.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ContextKey({self.name!r})"


class Context(ReplyShortcuts):
    """What a handler receives beside the event.

    Attributes:
        event: the typed event (a ``Message`` or ``Status``), or the raw dict for ``on_raw``.
        client: the provider API client (``WhizardClient``); its sends are journaled, so a
            later run of this event does not send again what an earlier run sent (see
            docs/exactly-one-reply.md).
        contact: the sender's entry from the callback's ``contacts``, or None.
        attempt: the delivery attempt, 1 the first time. Above 1 the handler may already have
            run for this event (a retry, or a restart after a crash): make side effects
            idempotent.
        conversation: the conversation key (the contact's ``wa_id``); replies go there.
        handler: the name of the handler the event was routed to (empty before routing).
        kind: ``message``, ``status`` or ``raw``.
        event_id: the event's dedupe key (``m:<message id>``, ``s:<id>:<status>``, ...).
    """

    __slots__ = (
        "_attempt",
        "_client",
        "_journal",
        "_journals",
        "_state",
        "_view",
        "contact",
        "conversation",
        "event",
        "event_id",
        "handler",
        "kind",
        "state_event",
        "state_handle",
        "state_source",
    )

    def __init__(
        self,
        *,
        event: Any,
        client: WhizardClient,
        contact: Contact | None,
        attempt: int,
        conversation: str,
        event_id: str,
        kind: str,
        send_journals: SendJournals | None = None,
    ) -> None:
        self.event = event
        self.kind = kind
        self._client = client
        self._view: WhizardClient | None = None
        self._journals = send_journals
        self._journal: SendJournal | None = None
        self.contact = contact
        self._attempt = attempt
        self.conversation = conversation
        self.event_id = event_id
        self.handler = ""
        self._state: dict[ContextKey[Any], Any] = {}
        self.state_source: StateOverlay | None = None
        self.state_event: StoredEvent | None = None
        self.state_handle: ConversationState | None = None

    @property
    def state(self) -> ConversationState:
        """The conversation's state (``await ctx.state.get()``, ``set``, ``data``, ``update``,
        ``clear``, ``load``, ``save``); changes commit with the event's acknowledgement and
        are dropped if the handler raises. See docs/state.md.

        Raises:
            ConfigurationError: the inbox keeps no conversation state, or this context was
                not built by the dispatcher.
        """
        handle = self.state_handle
        if handle is None:
            source, stored = self.state_source, self.state_event
            if source is None or stored is None:
                raise ConfigurationError(
                    "ctx.state works in handlers the dispatcher runs; this context was built "
                    "by hand"
                )
            handle = self.state_handle = source.handle(stored)
        return handle

    @property
    def client(self) -> WhizardClient:
        """The provider API client; its sends for this event go through the send journal."""
        view = self._view
        if view is None:
            view = self._client
            if self._journals is not None:
                # One journal per event, whichever client sends for it.
                if self._journal is None:
                    self._journal = self._journals.for_event(self.event_id)
                view = view.with_send_journal(self._journal)
            self._view = view
        return view

    @client.setter
    def client(self, client: WhizardClient) -> None:
        self._client = client
        self._view = None

    @property
    def attempt(self) -> int:
        """The delivery attempt, 1 the first time (see the class docstring)."""
        return self._attempt

    @attempt.setter
    def attempt(self, attempt: int) -> None:
        # A retry runs the handler again: its sends are matched from the first one again.
        self._attempt = attempt
        if self._journal is not None:
            self._journal.new_run()

    def __getitem__(self, key: ContextKey[T]) -> T:
        try:
            value: T = self._state[key]
        except KeyError:
            raise KeyError(f"{key!r} was not set on this context") from None
        return value

    def __setitem__(self, key: ContextKey[T], value: T) -> None:
        self._state[key] = value

    def __contains__(self, key: ContextKey[Any]) -> bool:
        return key in self._state

    @overload
    def get(self, key: ContextKey[T]) -> T | None: ...
    @overload
    def get(self, key: ContextKey[T], default: D) -> T | D: ...
    def get(self, key: ContextKey[T], default: Any = None) -> Any:
        """The value under ``key``, or ``default`` when unset."""
        return self._state.get(key, default)

    @property
    def number(self) -> str | None:
        """Which of our numbers received the event, by its name in ``numbers=``: the Cloud
        ``phone_number_id``, or the name of the on-premises webhook path (``/webhook/<name>``);
        None when the event names none. ``client`` speaks with that number's key."""
        return number_of(self.event)

    def __repr__(self) -> str:
        return (
            f"Context(event_id={self.event_id!r}, conversation={self.conversation!r}, "
            f"attempt={self.attempt}, handler={self.handler!r})"
        )
