"""The media calls of :class:`~whizrouter.client.WhizardClient`: download, save, upload, delete.

Both API shapes (PROVIDER.md §7):

* ``onprem``: ``GET /v1/media/{id}`` answers the file itself; ``POST /v1/media`` takes the raw
  bytes with their ``Content-Type`` and answers ``{"media": [{"id"}]}``;
  ``DELETE /v1/media/{id}``.
* ``cloud``: ``GET /{id}`` answers ``{"url", "mime_type", "sha256", "file_size"}``, whose
  ``url`` is on Meta's media host, which a provider key cannot open: its scheme and host are
  replaced by the provider's base URL and the file is fetched from there with the key header
  (:func:`through_base_url`); ``POST /media`` takes a multipart form
  (``messaging_product=whatsapp``, ``type``, ``file``) and answers ``{"id"}``;
  ``DELETE /{id}``.

Errors are the client's usual typed :class:`~whizrouter.errors.ProviderError`, retried by the
shared rule until the file starts to arrive; an unknown or expired id is a
:class:`~whizrouter.errors.MediaNotFoundError`. The stream itself, with its cap and hash check,
is :mod:`whizrouter.media`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import aiohttp

from whizrouter.defaults import ApiShape
from whizrouter.errors import MediaNotFoundError, MediaTooLargeError, ProviderError
from whizrouter.media import (
    MediaInfo,
    MediaKind,
    MediaRef,
    MediaStream,
    UploadSource,
    check_upload_size,
    media_kind,
    media_of,
    read_upload,
    sha256_hex,
)
from whizrouter.transport import Transport

if TYPE_CHECKING:
    from whizrouter.send_journal import SendJournal


def through_base_url(url: str, base_url: str) -> str:
    """``url`` (on Meta's media host) with its scheme and host replaced by the base URL's.

    The path and query are kept: ``https://lookaside.fbsbx.com/whatsapp_business/attachments/
    ?mid=1`` becomes ``{base_url}/whatsapp_business/attachments/?mid=1``.
    """
    parts = urlsplit(url)
    return base_url.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _not_found(media_id: str, exc: ProviderError) -> ProviderError:
    """A 404 as the typed "unknown media id" error; any other error as it is.

    The Graph API answers an unknown object id with a 400 (code 100, "Object with ID ...
    does not exist"): that is the same error.
    """
    if isinstance(exc, MediaNotFoundError):
        return exc
    graph_unknown = exc.code == 100 and "does not exist" in exc.developer_message
    if exc.http_code == 404 or (exc.http_code == 400 and graph_unknown):
        return MediaNotFoundError(media_id, exc)
    return exc


def _size(value: Any) -> int | None:
    """A ``file_size`` (a number, or digits in a string) as an int, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class MediaCalls:
    """The media methods: open, download, save, upload and delete.

    A part of :class:`~whizrouter.client.WhizardClient`, which sets the attributes below.
    """

    _shape: ApiShape
    _transport: Transport
    _base_url: str | None
    #: The default download cap, in bytes.
    _max_media_bytes: int
    #: The journal of the event a handler's view of the client works for; None elsewhere.
    _journal: SendJournal | None

    def _media_path(self, media_id: str) -> str:
        quoted = quote(media_id, safe="")
        return "/v1/media/" + quoted if self._shape == "onprem" else "/" + quoted

    @contextlib.asynccontextmanager
    async def open_media(
        self, media: MediaRef, *, max_bytes: int | None = None, sha256: str | None = None
    ) -> AsyncIterator[MediaStream]:
        """Open a media file to read in chunks, without holding it in memory::

            async with client.open_media(message.document) as media:
                async for chunk in media:
                    ...

        Args:
            media: a media id, a media object, or the image, video, audio, voice, document or
                sticker message holding it (its sha256 is then checked).
            max_bytes: the download cap in bytes; default the client's ``max_media_bytes``.
            sha256: the hash the file must have (hex or base64), when known otherwise.

        Yields:
            The :class:`~whizrouter.media.MediaStream`, open inside the ``async with``.

        Raises:
            MediaNotFoundError: the id is unknown or expired.
            MediaTooLargeError: the file is larger than the cap (said up front, or found
                while reading).
            MediaIntegrityError: the whole file does not match its sha256.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused, or failed after all retries.
        """
        media_id, given = media_of(media)
        limit = self._max_media_bytes if max_bytes is None else max_bytes
        expected = sha256 or given
        mime_type: str | None = None
        size: int | None = None
        target = self._media_path(media_id)
        async with contextlib.AsyncExitStack() as stack:
            try:
                if self._shape == "cloud":
                    answer = await self._transport.request("GET", target)
                    info = answer.data if isinstance(answer.data, dict) else {}
                    url = info.get("url")
                    if not isinstance(url, str) or not url:
                        raise ProviderError(
                            answer.status,
                            f"the provider's answer for media {media_id!r} has no download url",
                            raw=info,
                        )
                    mime_type = info.get("mime_type")
                    size = _size(info.get("file_size"))
                    if size is not None and size > limit:
                        raise MediaTooLargeError(media_id, limit, size)
                    own = info.get("sha256")
                    expected = (own if isinstance(own, str) and sha256_hex(own) else None) or (
                        expected
                    )
                    target = through_base_url(url, self._transport.base_url())
                response = await stack.enter_async_context(self._transport.stream(target))
            except ProviderError as exc:
                raise _not_found(media_id, exc) from exc
            yield MediaStream(
                media_id,
                response,
                mime_type=mime_type if isinstance(mime_type, str) else None,
                size=size,
                sha256=expected,
                limit=limit,
            )

    async def download_media(
        self, media: MediaRef, *, max_bytes: int | None = None, sha256: str | None = None
    ) -> bytes:
        """A media file's bytes, held in memory (use :meth:`open_media` or :meth:`save_media`
        for large files). Arguments and errors as in :meth:`open_media`."""
        async with self.open_media(media, max_bytes=max_bytes, sha256=sha256) as stream:
            return await stream.read()

    async def save_media(
        self,
        media: MediaRef,
        path: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        sha256: str | None = None,
    ) -> MediaInfo:
        """Download a media file to ``path``, streaming it, and atomically.

        The bytes go to a temporary file beside ``path``, which replaces ``path`` only once
        the whole file has arrived and matched its sha256: ``path`` never holds half a file,
        and on any error nothing is left behind.

        Args:
            media: as in :meth:`open_media`.
            path: the file to write; its directory must exist.
            max_bytes: the download cap in bytes; default the client's ``max_media_bytes``.
            sha256: the hash the file must have, when known otherwise.

        Returns:
            The saved file's id, MIME type, size, sha256 and path.

        Raises:
            Those of :meth:`open_media`, and ``OSError`` when the file cannot be written.
        """
        target = Path(path)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115  # closed below, or on error
            dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
        )
        try:
            with handle:
                async with self.open_media(media, max_bytes=max_bytes, sha256=sha256) as stream:
                    async for chunk in stream:
                        handle.write(chunk)
                    handle.flush()
                    await asyncio.to_thread(os.fsync, handle.fileno())
                    info = stream.info(target)
            os.replace(handle.name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)
            raise
        return info

    async def upload_media(
        self, source: UploadSource, mime_type: str | None = None, *, kind: MediaKind | None = None
    ) -> str:
        """Upload a file; return the media id to send it by (``send_image(to, id=...)``).

        Args:
            source: the bytes, a file's path, or a binary file open for reading.
            mime_type: its MIME type, such as ``"image/jpeg"``; guessed from a path's name
                when not given.
            kind: the kind it will be sent as, whose size limit applies; by default from the
                MIME type (``image/webp`` is a sticker, anything not image, video or audio a
                document).

        Returns:
            The media id (uploaded media is kept about 30 days).

        Raises:
            MessageValidationError: the file is empty, over WhatsApp's limit for its kind
                (nothing is sent), or its MIME type is unknown.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused, or failed after all retries.
        """
        data, mime, name = read_upload(source, mime_type)
        check_upload_size(len(data), mime, media_kind(mime, kind))
        journal = self._journal
        if journal is None:
            return await self._upload(data, mime, name)
        # Through a handler's client the upload is journaled like a send: a retried run that
        # uploads the same file again gets the same media id back, so the send that follows
        # has the same body and is answered from the journal too.
        digest = hashlib.sha256(data).hexdigest()
        return await journal.send(
            "/media", {"sha256": digest, "type": mime}, lambda: self._upload(data, mime, name), None
        )

    async def _upload(self, data: bytes, mime: str, name: str | None) -> str:
        """Post one upload in this client's API shape; return the media id."""
        if self._shape == "onprem":
            answer = await self._transport.request(
                "POST", "/v1/media", body=lambda: io.BytesIO(data), content_type=mime
            )
            items = answer.data.get("media") if isinstance(answer.data, dict) else None
            first = items[0] if isinstance(items, list) and items else None
            found = first.get("id") if isinstance(first, dict) else None
        else:

            def form() -> aiohttp.FormData:
                body = aiohttp.FormData()
                body.add_field("messaging_product", "whatsapp")
                body.add_field("type", mime)
                body.add_field(
                    "file", io.BytesIO(data), filename=name or "upload", content_type=mime
                )
                return body

            answer = await self._transport.request("POST", "/media", body=form)
            found = answer.data.get("id") if isinstance(answer.data, dict) else None
        if not isinstance(found, str) or not found:
            raise ProviderError(
                answer.status,
                "the provider accepted the upload but its answer carries no media id",
                raw=answer.data,
            )
        return found

    async def delete_media(self, media_id: str) -> None:
        """Delete a media file we uploaded.

        Raises:
            MediaNotFoundError: the id is unknown, expired or deleted already.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused, or failed after all retries.
        """
        media_id, _ = media_of(media_id)
        try:
            await self._transport.request("DELETE", self._media_path(media_id))
        except ProviderError as exc:
            raise _not_found(media_id, exc) from exc
