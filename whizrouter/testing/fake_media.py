"""The fake provider's media: the files it holds and its media routes, in both API shapes.

* ``onprem``: ``GET /v1/media/{id}`` answers the file; ``POST /v1/media`` takes the raw bytes
  with their ``Content-Type``; ``DELETE /v1/media/{id}``.
* ``cloud``: ``GET /{id}`` answers the media object whose ``url`` is on Meta's media host
  (:data:`META_MEDIA_HOST`), as the real API does; the file is served at that URL's path and
  query below the fake's own base URL (``GET /whatsapp_business/attachments/?mid={id}``), which
  is where a client must fetch it; ``POST /media`` takes the multipart form
  (``messaging_product``, ``type``, ``file``); ``DELETE /{id}``.

An unknown id is answered 404 in the shape's error form. Files are streamed in chunks, so a
large one costs the test process no copy.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from whizrouter.defaults import ApiShape
from whizrouter.testing.error_bodies import ONPREM_META, errors_list_body, graph_error_body
from whizrouter.testing.provider_api import bad_request, json_response

#: Meta's media host, where the Cloud media object's ``url`` points (a key cannot open it).
META_MEDIA_HOST: Final = "https://lookaside.fbsbx.com"
#: The path of the Cloud download URL, below Meta's host or the provider's base URL.
CLOUD_DOWNLOAD_PATH: Final = "/whatsapp_business/attachments/"
_CHUNK = 64 * 1024
# First path segments of the Cloud shape that are not media ids.
_CLOUD_ROUTES = frozenset({"messages", "media", "v1", "whatsapp_business"})


@dataclass(frozen=True, slots=True)
class FakeMediaFile:
    """A file the fake provider holds.

    Attributes:
        data: its bytes.
        mime_type: its MIME type.
        filename: the name it was uploaded with, if any.
        declare_size: whether downloads state its size (``Content-Length``, ``file_size``);
            without, it is sent chunked, as a provider that does not know the size would.
    """

    data: bytes
    mime_type: str
    filename: str | None = None
    declare_size: bool = True

    @property
    def sha256(self) -> str:
        """Its SHA-256, as lowercase hex."""
        return hashlib.sha256(self.data).hexdigest()


class MediaDownload(web.StreamResponse):
    """A file's bytes, written in chunks once the fake has recorded the request."""

    def __init__(self, file: FakeMediaFile) -> None:
        super().__init__(status=200, headers={"Content-Type": file.mime_type})
        if file.declare_size:
            self.content_length = len(file.data)
        else:
            self.enable_chunked_encoding()
        self.file = file

    async def send(self, request: web.Request) -> None:
        """Write the whole file to the client."""
        await self.prepare(request)
        view = memoryview(self.file.data)
        for start in range(0, len(view), _CHUNK):
            await self.write(view[start : start + _CHUNK])
        await self.write_eof()


class FakeMedia:
    """The media files of one fake provider, and the answers of its media routes.

    Attributes:
        files: the files held, by media id (the ones added and the ones uploaded).
    """

    def __init__(self, shape: ApiShape) -> None:
        self.shape = shape
        self.files: dict[str, FakeMediaFile] = {}
        self._ids = itertools.count(1)

    def add(
        self,
        data: bytes,
        mime_type: str,
        *,
        media_id: str | None = None,
        filename: str | None = None,
        declare_size: bool = True,
    ) -> str:
        """Hold a file, as if a customer had sent it; return its media id."""
        media_id = media_id if media_id is not None else f"media.fake-{next(self._ids)}"
        self.files[media_id] = FakeMediaFile(bytes(data), mime_type, filename, declare_size)
        return media_id

    def classify(self, method: str, path: str) -> tuple[str, str | None] | None:
        """The kind of a media request and the media id it names, or None for no media route."""
        if self.shape == "onprem":
            if path == "/v1/media":
                return ("media_upload", None) if method == "POST" else None
            if path.startswith("/v1/media/"):
                media_id = path[len("/v1/media/") :]
                kinds = {"GET": "media_download", "DELETE": "media_delete"}
                return (kinds[method], media_id) if method in kinds else None
            return None
        if path == "/media":
            return ("media_upload", None) if method == "POST" else None
        if path == CLOUD_DOWNLOAD_PATH and method == "GET":
            return "media_download", None
        segment = path[1:]
        if segment and "/" not in segment and segment not in _CLOUD_ROUTES:
            kinds = {"GET": "media_info", "DELETE": "media_delete"}
            return (kinds[method], segment) if method in kinds else None
        return None

    def answer(
        self, request: web.Request, kind: str, media_id: str | None, body: bytes
    ) -> web.StreamResponse:
        """The answer to a media request of ``kind``."""
        if kind == "media_upload":
            return self._upload(request, body)
        if kind == "media_download" and media_id is None:
            media_id = request.query.get("mid")
        file = self.files.get(media_id or "")
        if media_id is None or file is None:
            return self._not_found(media_id)
        if kind == "media_download":
            return MediaDownload(file)
        if kind == "media_delete":
            del self.files[media_id]
            return json_response(200, {"success": True} if self.shape == "cloud" else {})
        info: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "url": f"{META_MEDIA_HOST}{CLOUD_DOWNLOAD_PATH}?mid={media_id}&ext=1718000000"
            "&hash=ATfakeHash",
            "mime_type": file.mime_type,
            "sha256": file.sha256,
            "id": media_id,
        }
        if file.declare_size:
            info["file_size"] = len(file.data)
        return json_response(200, info)

    def _not_found(self, media_id: str | None) -> web.Response:
        problem = f"media {media_id!r} does not exist (unknown, expired or deleted)"
        if self.shape == "cloud":
            return json_response(404, graph_error_body(100, problem, details=problem))
        return json_response(404, errors_list_body(1006, "Resource not found", problem))

    def _upload(self, request: web.Request, body: bytes) -> web.Response:
        if self.shape == "onprem":
            if not body:
                return bad_request(self.shape, 1008, "The request body is empty.")
            media_id = self.add(body, request.content_type)
            return json_response(201, {"media": [{"id": media_id}], "meta": dict(ONPREM_META)})
        boundary = request.content_type == "multipart/form-data" and _boundary(request)
        fields = _multipart_fields(body, boundary) if boundary else {}
        if fields.get("messaging_product", (None, b""))[1] != b"whatsapp":
            return bad_request(self.shape, 100, "The parameter messaging_product is required.")
        if "file" not in fields or not fields["file"][1]:
            return bad_request(self.shape, 100, "The parameter file is required.")
        mime_type = fields.get("type", (None, b""))[1].decode() or "application/octet-stream"
        media_id = self.add(fields["file"][1], mime_type, filename=fields["file"][0])
        return json_response(200, {"id": media_id})


def _boundary(request: web.Request) -> str | None:
    header = request.headers.get("Content-Type", "")
    for param in header.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    return None


def _multipart_fields(body: bytes, boundary: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (file name, bytes)."""
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        name: str | None = None
        filename: str | None = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                for param in line.split(";")[1:]:
                    key, _, value = param.strip().partition("=")
                    if key == "name":
                        name = value.strip('"')
                    elif key == "filename":
                        filename = value.strip('"')
        if name is not None:
            fields[name] = (filename, content.removesuffix(b"\r\n"))
    return fields
