"""``Context``: what a handler gets beside the event.

It names the conversation, carries the provider client, the attempt number and per-event
state that plugins and handlers share under typed ``ContextKey``s, and has the shortcuts a
handler answers with: ``reply_*`` (media by id, link or a file's ``path``, uploaded first),
``download`` and ``save_media`` of what the customer sent, and ``typing``. Its client is a
view of the app's whose sends go through the event's send journal
(``whizrouter.send_journal``), built at the first use, so a handler that sends nothing pays
nothing for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from whizrouter.defaults import DEFAULT_TYPING_INTERVAL
from whizrouter.errors import ConfigurationError, MessageValidationError
from whizrouter.numbers import number_of
from whizrouter.typing_indicator import Typing

if TYPE_CHECKING:
    from whizrouter.client import WhizardClient
    from whizrouter.conversation_state import ConversationState
    from whizrouter.dispatcher.state_overlay import StateOverlay
    from whizrouter.events import Contact
    from whizrouter.inbox.base import StoredEvent
    from whizrouter.media import MediaInfo, MediaKind, MediaRef
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


class Context:
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

    @property
    def message_id(self) -> str | None:
        """The id of the message this event is (or is about), if it has one."""
        value = getattr(self.event, "id", None)
        return value if isinstance(value, str) else None

    def _quote(self, quote: bool) -> str | None:
        return self.message_id if quote and self.kind == "message" else None

    async def reply(
        self,
        text: str,
        *,
        quote: bool = False,
        preview_url: bool = False,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send a text to this conversation; return the new message id.

        Args:
            text: the body (1 to 4096 characters).
            quote: show the incoming message as quoted (Cloud shape only; ignored on-prem).
            preview_url: let WhatsApp render a preview of the first link.
            idempotent: False sends it on every run of the handler, outside the send journal.
            idempotency_key: names this send in the journal instead of its ordinal within
                the run (every ``reply_*`` and ``react`` takes these two keywords as well).
        """
        return await self.client.send_text(
            self.conversation,
            text,
            preview_url=preview_url,
            reply_to=self._quote(quote),
            idempotent=idempotent,
            idempotency_key=idempotency_key,
        )

    async def reply_image(
        self,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        quote: bool = False,
        path: str | os.PathLike[str] | None = None,
        mime_type: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send an image (by media id, link, or a file's ``path``, uploaded first) to this
        conversation; ``mime_type`` is guessed from the path's name when not given."""
        id = await self._upload(id, path, mime_type, "image")
        return await self.client.send_image(
            self.conversation,
            id=id,
            link=link,
            caption=caption,
            reply_to=self._quote(quote),
            idempotent=idempotent,
            idempotency_key=idempotency_key,
        )

    async def reply_document(
        self,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        quote: bool = False,
        path: str | os.PathLike[str] | None = None,
        mime_type: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send a document (by media id, link, or a file's ``path``, uploaded first, whose name
        is then the default ``filename``) to this conversation."""
        if path is not None and filename is None:
            filename = Path(path).name
        id = await self._upload(id, path, mime_type, "document")
        return await self.client.send_document(
            self.conversation,
            id=id,
            link=link,
            caption=caption,
            filename=filename,
            reply_to=self._quote(quote),
            idempotent=idempotent,
            idempotency_key=idempotency_key,
        )

    async def reply_video(
        self,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        quote: bool = False,
        path: str | os.PathLike[str] | None = None,
        mime_type: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send a video (by media id, link, or a file's ``path``, uploaded first)."""
        id = await self._upload(id, path, mime_type, "video")
        return await self.client.send_video(
            self.conversation,
            id=id,
            link=link,
            caption=caption,
            reply_to=self._quote(quote),
            idempotent=idempotent,
            idempotency_key=idempotency_key,
        )

    async def reply_audio(
        self,
        *,
        id: str | None = None,
        link: str | None = None,
        quote: bool = False,
        path: str | os.PathLike[str] | None = None,
        mime_type: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send an audio file (by media id, link, or a file's ``path``, uploaded first)."""
        id = await self._upload(id, path, mime_type, "audio")
        return await self.client.send_audio(
            self.conversation,
            id=id,
            link=link,
            reply_to=self._quote(quote),
            idempotent=idempotent,
            idempotency_key=idempotency_key,
        )

    async def reply_sticker(
        self,
        *,
        id: str | None = None,
        link: str | None = None,
        quote: bool = False,
        path: str | os.PathLike[str] | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send a sticker (by media id, link, or a webp file's ``path``, uploaded first)."""
        id = await self._upload(id, path, "image/webp", "sticker")
        return await self.client.send_sticker(
            self.conversation,
            id=id,
            link=link,
            reply_to=self._quote(quote),
            idempotent=idempotent,
            idempotency_key=idempotency_key,
        )

    async def _upload(
        self,
        id: str | None,
        path: str | os.PathLike[str] | None,
        mime_type: str | None,
        kind: MediaKind,
    ) -> str | None:
        """The media id to send: ``id``, or the id of ``path`` once uploaded."""
        if path is None:
            return id
        if id is not None:
            raise MessageValidationError(f"pass the {kind}'s id, link or path, not several")
        return await self.client.upload_media(path, mime_type, kind=kind)

    async def download(self, media: MediaRef, *, max_bytes: int | None = None) -> bytes:
        """The bytes of a media file: ``await ctx.download(message.image)``.

        Takes a media message (image, video, audio, voice, document, sticker), its media
        object or a media id; checks the sha256 the message carries. Held in memory: use
        :meth:`save_media` or ``ctx.client.open_media`` for large files. Errors as in
        :meth:`WhizardClient.open_media <whizrouter.WhizardClient.open_media>`.
        """
        return await self.client.download_media(media, max_bytes=max_bytes)

    async def save_media(
        self, media: MediaRef, path: str | os.PathLike[str], *, max_bytes: int | None = None
    ) -> MediaInfo:
        """Stream a media file to ``path`` atomically; its size, MIME type and sha256.

        As :meth:`WhizardClient.save_media <whizrouter.WhizardClient.save_media>`.
        """
        return await self.client.save_media(media, path, max_bytes=max_bytes)

    def typing(self, *, interval: float = DEFAULT_TYPING_INTERVAL) -> Typing:
        """The typing indicator for this message (Cloud only; on-premises it sends nothing).

        ``await ctx.typing()`` shows it once; ``async with ctx.typing():`` shows it and sends it
        again every ``interval`` seconds until the block ends. A failure is logged, never
        raised.
        """
        return Typing(self.client, self.message_id if self.kind == "message" else None, interval)

    async def reply_buttons(
        self,
        body: str,
        buttons: Iterable[tuple[str, str]] | Mapping[str, str],
        *,
        quote: bool = False,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send up to three reply buttons (``(id, title)`` pairs) to this conversation."""
        return await self.client.send_buttons(
            self.conversation,
            body,
            buttons,
            reply_to=self._quote(quote),
            idempotent=idempotent,
            idempotency_key=idempotency_key,
        )

    async def reply_list(
        self,
        body: str,
        *,
        button: str,
        sections: Iterable[Mapping[str, Any]],
        quote: bool = False,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send a list message to this conversation."""
        return await self.client.send_list(
            self.conversation,
            body,
            button=button,
            sections=sections,
            reply_to=self._quote(quote),
            idempotent=idempotent,
            idempotency_key=idempotency_key,
        )

    async def reply_template(
        self,
        *,
        name: str,
        language: str,
        components: Iterable[Mapping[str, Any]] | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send a template message to this conversation (needed outside the 24-hour window)."""
        return await self.client.send_template(
            self.conversation,
            name=name,
            language=language,
            components=list(components) if components is not None else None,
            idempotent=idempotent,
            idempotency_key=idempotency_key,
        )

    async def react(
        self, emoji: str, *, idempotent: bool = True, idempotency_key: str | None = None
    ) -> str:
        """React to the incoming message with ``emoji`` (``""`` removes the reaction)."""
        message_id = self.message_id
        if message_id is None:
            raise ValueError("this event has no message to react to")
        return await self.client.send_reaction(
            self.conversation,
            message_id,
            emoji,
            idempotent=idempotent,
            idempotency_key=idempotency_key,
        )

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
