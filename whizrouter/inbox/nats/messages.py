"""How the NATS inbox writes events and dead letters as JetStream messages, and reads them.

The body is the event body as received; everything else travels in ``Whiz-*`` headers,
percent-encoded since a header value must not hold CR or LF. ``Nats-Msg-Id`` lets JetStream
drop a republished event within its duplicate window.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import quote, unquote

from nats.aio.msg import Msg
from nats.js.api import RawStreamMsg

from whizrouter.inbox.base import DeadLetter, EventKind, RawEvent, StoredEvent, build_stored_event

H_KIND, H_KEY, H_CONVERSATION = "Whiz-Kind", "Whiz-Key", "Whiz-Conversation"
H_SEQ = "Whiz-Seq"
H_HANDLER, H_ATTEMPTS, H_ERROR = "Whiz-Handler", "Whiz-Attempts", "Whiz-Error"
MSG_ID = "Nats-Msg-Id"

_KINDS = ("message", "status", "raw")
_MAX_ERROR_CHARS = 8000


def quote_header(value: str) -> str:
    """A header value that cannot carry CR/LF (an error text might)."""
    return quote(value, safe=":/=@+,;!*'()")


def _kind(headers: dict[str, str]) -> EventKind:
    kind = headers.get(H_KIND, "raw")
    return cast(EventKind, kind if kind in _KINDS else "raw")


def event_headers(event: RawEvent | StoredEvent | DeadLetter) -> dict[str, str]:
    """The headers an event is published with."""
    return {
        MSG_ID: quote_header(event.key),
        H_KIND: event.kind,
        H_KEY: quote_header(event.key),
        H_CONVERSATION: quote_header(event.conversation),
    }


def stored_event(msg: Msg) -> StoredEvent:
    """The event a fetched JetStream message carries; attempts count every earlier delivery."""
    meta = msg.metadata
    headers = msg.headers or {}
    return build_stored_event(
        seq=meta.sequence.stream,
        kind=_kind(headers),
        key=unquote(headers.get(H_KEY, "")),
        conversation=unquote(headers.get(H_CONVERSATION, "")),
        body=msg.data,
        attempts=meta.num_delivered - 1,
        received_at=meta.timestamp.timestamp(),
    )


def dead_letter_headers(
    event: StoredEvent, *, handler: str, attempts: int, error: str
) -> dict[str, str]:
    """The headers of the dead letter of ``event``."""
    return {
        **event_headers(event),
        # Two workers settling the same delivery leave one dead letter.
        MSG_ID: f"dead:{event.seq}",
        H_SEQ: str(event.seq),
        H_HANDLER: quote_header(handler),
        H_ATTEMPTS: str(attempts),
        # The end of a traceback says the most.
        H_ERROR: quote_header(
            error if len(error) <= _MAX_ERROR_CHARS else "…" + error[-_MAX_ERROR_CHARS:]
        ),
    }


def dead_letter(raw: RawStreamMsg) -> DeadLetter:
    """The dead letter a message of the dead-letter stream holds."""
    headers: dict[str, str] = raw.headers or {}
    return DeadLetter(
        seq=int(headers.get(H_SEQ, "0")),
        kind=_kind(headers),
        key=unquote(headers.get(H_KEY, "")),
        conversation=unquote(headers.get(H_CONVERSATION, "")),
        body=raw.data or b"",
        handler=unquote(headers.get(H_HANDLER, "")),
        attempts=int(headers.get(H_ATTEMPTS, "0")),
        error=unquote(headers.get(H_ERROR, "")),
        died_at=raw.time.timestamp() if raw.time else 0.0,
    )
