"""Media files: the download stream with its size cap and hash check, and what an upload checks.

A download is a :class:`MediaStream` (``async with client.open_media(id) as media:``): it reads
the file in chunks, never holding more than one, stops with
:class:`~whizrouter.errors.MediaTooLargeError` once the file passes its cap, and when the
whole file has been read checks it against the sha256 the provider or the message gave
(:class:`~whizrouter.errors.MediaIntegrityError` if it differs). The provider calls that open
it are :mod:`whizrouter.media_client`'s.

An upload's size is checked here against the limit WhatsApp sets for its kind of media
(:data:`~whizrouter.defaults.MEDIA_SIZE_LIMITS`), before anything is sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, TypeAlias

import aiohttp

from whizrouter.defaults import MEDIA_SIZE_LIMITS
from whizrouter.errors import (
    MediaIntegrityError,
    MediaTooLargeError,
    MessageValidationError,
    ProviderError,
)
from whizrouter.events import (
    AudioMessage,
    DocumentMessage,
    ImageMessage,
    StickerMessage,
    VideoMessage,
    VoiceMessage,
)
from whizrouter.events.media import Media

#: The kinds of media WhatsApp sends and receives.
MediaKind: TypeAlias = Literal["image", "video", "audio", "document", "sticker"]
#: What names a media file to download: its id, its media object, or the message holding it.
MediaRef: TypeAlias = (
    str
    | Media
    | ImageMessage
    | VideoMessage
    | AudioMessage
    | VoiceMessage
    | DocumentMessage
    | StickerMessage
)
#: What an upload takes: the bytes, a file's path, or a binary file open for reading.
UploadSource: TypeAlias = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]

#: The size of the chunks a stream yields when none is asked for.
CHUNK_SIZE = 64 * 1024


def media_of(ref: MediaRef) -> tuple[str, str | None]:
    """The media id ``ref`` names and the sha256 it carries (None for a bare id).

    Raises:
        MessageValidationError: ``ref`` is an empty id or not a media-bearing message.
    """
    if isinstance(ref, str):
        if not ref.strip():
            raise MessageValidationError("the media id is empty")
        return ref, None
    media: Media
    if isinstance(ref, Media):
        media = ref
    elif isinstance(ref, ImageMessage):
        media = ref.image
    elif isinstance(ref, VideoMessage):
        media = ref.video
    elif isinstance(ref, AudioMessage):
        media = ref.audio
    elif isinstance(ref, VoiceMessage):
        media = ref.voice
    elif isinstance(ref, DocumentMessage):
        media = ref.document
    elif isinstance(ref, StickerMessage):
        media = ref.sticker
    else:
        raise MessageValidationError(
            f"{type(ref).__name__} carries no media: pass an image, video, audio, voice, "
            "document or sticker message, its media object, or a media id"
        )
    return media.id, media.sha256


def sha256_hex(value: str | None) -> str | None:
    """A sha256 as lowercase hex, read from hex or base64 (WhatsApp's callbacks use base64).

    Returns None for None and for a value that is neither (then nothing can be checked).
    """
    if not value:
        return None
    text = value.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text).hex()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """A media file that was read to its end and checked.

    Attributes:
        media_id: its id at the provider.
        mime_type: its MIME type, when the provider said.
        size: its size in bytes.
        sha256: the lowercase hex SHA-256 of its bytes.
        path: where it was saved, for :meth:`~whizrouter.WhizardClient.save_media`.
    """

    media_id: str
    mime_type: str | None
    size: int
    sha256: str
    path: Path | None = None


class MediaStream:
    """A media file being downloaded: read it in chunks, or whole with :meth:`read`.

    Made by :meth:`~whizrouter.WhizardClient.open_media`, open only inside its ``async with``.
    Iterating it (``async for chunk in media``) yields chunks of up to 64 KiB.

    Attributes:
        media_id: the media's id.
        mime_type: its MIME type, from the provider (the Cloud media object, else the answer's
            ``Content-Type``).
        size: its size in bytes when the provider said (``file_size`` or ``Content-Length``),
            else None.
        sha256: the lowercase hex SHA-256 the provider or the message gave, else None; once the
            whole file has been read, the hash of the bytes read (checked against the given one).
        received: the bytes read so far.
        limit: the download cap in bytes.
    """

    def __init__(
        self,
        media_id: str,
        response: aiohttp.ClientResponse,
        *,
        mime_type: str | None,
        size: int | None,
        sha256: str | None,
        limit: int,
    ) -> None:
        self.media_id = media_id
        self.mime_type = mime_type or response.content_type
        length = response.content_length
        self.size = size if size is not None else length
        self.sha256 = sha256_hex(sha256)
        self.limit = limit
        self.received = 0
        self._response = response
        self._hash = hashlib.sha256()
        self._done = False
        if self.size is not None and self.size > limit:
            raise MediaTooLargeError(media_id, limit, self.size)

    def __repr__(self) -> str:
        return (
            f"MediaStream(media_id={self.media_id!r}, mime_type={self.mime_type!r}, "
            f"size={self.size!r}, received={self.received})"
        )

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.iter_chunks()

    async def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Yield the file's bytes in chunks of up to ``chunk_size``.

        Raises:
            MediaTooLargeError: the file passed the cap; no more is read.
            MediaIntegrityError: the whole file does not match the sha256 given for it.
            ProviderError: the connection broke off (retryable: download again).
        """
        if self._done:
            return
        chunks = self._response.content.iter_chunked(chunk_size)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise ProviderError(
                    0,
                    f"the download of media {self.media_id!r} broke off after "
                    f"{self.received} bytes: {exc or type(exc).__name__}",
                    retryable=True,
                    hint="download it again",
                ) from exc
            self.received += len(chunk)
            if self.received > self.limit:
                raise MediaTooLargeError(self.media_id, self.limit)
            self._hash.update(chunk)
            yield chunk
        self._finish()

    async def read(self) -> bytes:
        """The rest of the file as one ``bytes`` (held in memory: stream large files)."""
        return b"".join([chunk async for chunk in self.iter_chunks()])

    def _finish(self) -> None:
        self._done = True
        got = self._hash.hexdigest()
        if self.size is not None and self.received != self.size:
            raise MediaIntegrityError(
                f"media {self.media_id!r} ended after {self.received} of its {self.size} "
                "bytes; download it again"
            )
        if self.sha256 is not None and got != self.sha256:
            raise MediaIntegrityError(
                f"media {self.media_id!r} has sha256 {got}, not the {self.sha256} it came with; "
                "download it again"
            )
        self.sha256 = got

    def info(self, path: Path | None = None) -> MediaInfo:
        """What was read, once the whole file has been (else a ``RuntimeError``)."""
        if not self._done or self.sha256 is None:
            raise RuntimeError("the media has not been read to its end yet")
        return MediaInfo(self.media_id, self.mime_type, self.received, self.sha256, path)


def media_kind(mime_type: str, kind: MediaKind | None = None) -> MediaKind:
    """The kind of media a MIME type is sent as (``image/webp`` is a sticker), or ``kind``."""
    if kind is not None:
        if kind not in MEDIA_SIZE_LIMITS:
            raise MessageValidationError(
                f"unknown media kind {kind!r}; use one of {', '.join(MEDIA_SIZE_LIMITS)}"
            )
        return kind
    main = mime_type.split(";", 1)[0].strip().lower()
    if main == "image/webp":
        return "sticker"
    for prefix in ("image", "video", "audio"):
        if main.startswith(prefix + "/"):
            return prefix
    return "document"


def check_upload_size(size: int, mime_type: str, kind: MediaKind) -> None:
    """Refuse, before sending anything, a file over WhatsApp's limit for its kind.

    Raises:
        MessageValidationError: the file is empty or too large.
    """
    if size == 0:
        raise MessageValidationError("the file to upload is empty")
    limit = MEDIA_SIZE_LIMITS[kind]
    if size > limit:
        hint = (
            "send it as a document (kind='document') or make it smaller"
            if kind != "document"
            else "split or compress it, or send a link instead"
        )
        raise MessageValidationError(
            f"the {mime_type} file is {size} bytes, over the {limit} bytes WhatsApp allows for "
            f"a {kind}; {hint}"
        )


def read_upload(source: UploadSource, mime_type: str | None) -> tuple[bytes, str, str | None]:
    """The bytes of an upload, its MIME type (guessed from a path's name when not given) and
    its file name, checking a file's size before reading it.

    Raises:
        MessageValidationError: the MIME type is missing and cannot be guessed, or the source
            is of no readable kind.
    """
    name: str | None = None
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        name = path.name
        mime_type = mime_type or mimetypes.guess_type(path.name)[0]
        if mime_type is not None:
            check_upload_size(path.stat().st_size, mime_type, media_kind(mime_type))
        data = path.read_bytes()
    else:
        data = source.read()
        if not isinstance(data, bytes):
            raise MessageValidationError(
                f"cannot upload what {type(source).__name__}.read() gave: pass bytes, a path or "
                "a file opened in binary mode ('rb')"
            )
    if not mime_type:
        raise MessageValidationError(
            "the media type of the upload is unknown: pass mime_type= (such as 'image/jpeg')"
        )
    return data, mime_type, name
