"""``RecordedCall``: one request the fake provider received, as a test reads it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One request the fake provider received.

    Attributes:
        method: the HTTP method.
        path: the decoded URL path, such as ``/v1/messages``.
        headers: the request headers (case-insensitive lookup).
        json: the parsed JSON body, or ``None`` when the body was empty or not JSON.
        body: the raw body bytes.
        status: the status the fake answered with (even if the answer was delayed or dropped).
        kind: ``"send"``, ``"mark_read"``, ``"typing"``, ``"get_webhook"``, ``"set_webhook"``,
            ``"media_info"``, ``"media_download"``, ``"media_upload"``, ``"media_delete"`` or
            ``"other"``.
        message_id: for a send, the id the fake assigned; for a mark-read or typing, the id it
            names; for a media call, the media id.
        at: when the request arrived, in the event loop's clock (``loop.time()``).
    """

    method: str
    path: str
    headers: Mapping[str, str]
    json: Any
    body: bytes
    status: int
    kind: str
    message_id: str | None
    at: float

    @property
    def ok(self) -> bool:
        """Whether the fake answered with a 2xx status."""
        return 200 <= self.status < 300

    def describe(self) -> str:
        """A one-line summary, used in assertion messages."""
        body = self.body[:120].decode("utf-8", "replace")
        return f"{self.method} {self.path} -> {self.status} ({self.kind}) {body}"
