"""``Context``: what a handler gets beside the event.

It names the conversation, carries the provider client, the attempt number and per-event
state that plugins and handlers share under typed ``ContextKey``s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from whizrouter.errors import ConfigurationError

if TYPE_CHECKING:
    from whizrouter.client import WhizardClient
    from whizrouter.conversation_state import ConversationState
    from whizrouter.dispatcher.state_overlay import StateOverlay
    from whizrouter.events import Contact
    from whizrouter.inbox.base import StoredEvent

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


class Context:
    """What a handler receives beside the event.

    Attributes:
        event: the typed event (a ``Message`` or ``Status``), or the raw dict for ``on_raw``.
        client: the provider API client (``WhizardClient``).
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
        "_state",
        "attempt",
        "client",
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
    ) -> None:
        self.event = event
        self.kind = kind
        self.client = client
        self.contact = contact
        self.attempt = attempt
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
    def message_id(self) -> str | None:
        """The id of the message this event is (or is about), if it has one."""
        value = getattr(self.event, "id", None)
        return value if isinstance(value, str) else None

    def _quote(self, quote: bool) -> str | None:
        return self.message_id if quote and self.kind == "message" else None

    async def reply(self, text: str, *, quote: bool = False, preview_url: bool = False) -> str:
        """Send a text to this conversation; return the new message id.

        Args:
            text: the body (1 to 4096 characters).
            quote: show the incoming message as quoted (Cloud shape only; ignored on-prem).
            preview_url: let WhatsApp render a preview of the first link.
        """
        return await self.client.send_text(
            self.conversation, text, preview_url=preview_url, reply_to=self._quote(quote)
        )

    async def reply_image(
        self,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        quote: bool = False,
    ) -> str:
        """Send an image (by media id or link) to this conversation."""
        return await self.client.send_image(
            self.conversation, id=id, link=link, caption=caption, reply_to=self._quote(quote)
        )

    async def reply_document(
        self,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        quote: bool = False,
    ) -> str:
        """Send a document (by media id or link) to this conversation."""
        return await self.client.send_document(
            self.conversation,
            id=id,
            link=link,
            caption=caption,
            filename=filename,
            reply_to=self._quote(quote),
        )

    async def reply_buttons(
        self,
        body: str,
        buttons: Iterable[tuple[str, str]] | Mapping[str, str],
        *,
        quote: bool = False,
    ) -> str:
        """Send up to three reply buttons (``(id, title)`` pairs) to this conversation."""
        return await self.client.send_buttons(
            self.conversation, body, buttons, reply_to=self._quote(quote)
        )

    async def reply_list(
        self, body: str, *, button: str, sections: Iterable[Mapping[str, Any]], quote: bool = False
    ) -> str:
        """Send a list message to this conversation."""
        return await self.client.send_list(
            self.conversation, body, button=button, sections=sections, reply_to=self._quote(quote)
        )

    async def reply_template(
        self,
        *,
        name: str,
        language: str,
        components: Iterable[Mapping[str, Any]] | None = None,
    ) -> str:
        """Send a template message to this conversation (needed outside the 24-hour window)."""
        return await self.client.send_template(
            self.conversation,
            name=name,
            language=language,
            components=list(components) if components is not None else None,
        )

    async def react(self, emoji: str) -> str:
        """React to the incoming message with ``emoji`` (``""`` removes the reaction)."""
        message_id = self.message_id
        if message_id is None:
            raise ValueError("this event has no message to react to")
        return await self.client.send_reaction(self.conversation, message_id, emoji)

    async def mark_read(self) -> None:
        """Mark the incoming message read (blue ticks)."""
        message_id = self.message_id
        if message_id is not None and self.kind == "message":
            await self.client.mark_read(message_id)

    def __repr__(self) -> str:
        return (
            f"Context(event_id={self.event_id!r}, conversation={self.conversation!r}, "
            f"attempt={self.attempt}, handler={self.handler!r})"
        )
