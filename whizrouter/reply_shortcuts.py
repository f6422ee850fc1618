"""The shortcuts a handler answers with, on its ``Context``.

``reply`` and every ``reply_*`` (media by id, link or a file's ``path``, uploaded first),
``react``, ``mark_read``, ``download`` and ``save_media`` of what the customer sent, and
``typing``: each one call of the context's client, addressed to the event's conversation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whizrouter.defaults import DEFAULT_TYPING_INTERVAL
from whizrouter.errors import MessageValidationError
from whizrouter.typing_indicator import Typing

if TYPE_CHECKING:
    from whizrouter.client import WhizardClient
    from whizrouter.media import MediaInfo, MediaKind, MediaRef


class ReplyShortcuts:
    """The answering methods of :class:`~whizrouter.context.Context`, which sets the
    attributes below."""

    __slots__ = ()

    event: Any
    kind: str
    conversation: str

    @property
    def client(self) -> WhizardClient:
        raise NotImplementedError  # Context's client: a journaling view of the app's

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
