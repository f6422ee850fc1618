"""Default values and the provider API shapes, each named once.

Settings, the inbox backends, the receiver and the client all fall back to these; a default
changed here changes everywhere it applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

#: The provider's two API shapes: ``onprem`` (the Whizard docs) and ``cloud`` (Meta's envelope).
ApiShape = Literal["onprem", "cloud"]
API_SHAPES: tuple[ApiShape, ...] = ("onprem", "cloud")
DEFAULT_SHAPE: ApiShape = "onprem"

#: The embedded, durable default inbox: a sqlite file in the working directory.
DEFAULT_INBOX_URL = "sqlite:///whizrouter-inbox.db"
#: Conversations handled at once (``WHIZROUTER_CONCURRENCY``).
DEFAULT_CONCURRENCY = 64
#: Unsettled events above which callbacks are answered 503 (``WHIZROUTER_MAX_BACKLOG``).
DEFAULT_MAX_BACKLOG = 100_000
#: Largest callback body in bytes (``WHIZROUTER_BODY_LIMIT``).
DEFAULT_BODY_LIMIT = 10 * 1024 * 1024
#: Seconds to receive a whole callback body before answering 408.
DEFAULT_READ_TIMEOUT = 10.0
#: Seconds running handlers get to finish at shutdown (``WHIZROUTER_SHUTDOWN_GRACE``).
DEFAULT_SHUTDOWN_GRACE = 25.0
#: How long a dedupe key is remembered: the provider resends for up to 7 days.
DEFAULT_DEDUPE_SECONDS = 7 * 24 * 3600
#: Seconds a provider API call may take before it counts as failed (and is retried).
DEFAULT_CLIENT_TIMEOUT = 10.0

#: The largest media file a download reads before it stops, in bytes (``max_media_bytes=``).
DEFAULT_MAX_MEDIA_BYTES = 100 * 1024 * 1024
#: The size limits WhatsApp sets on media we upload, per media kind, in bytes (PROVIDER.md §7).
#: Stickers: 500 KB is the animated limit; a static sticker may only be 100 KB.
MEDIA_SIZE_LIMITS: Mapping[str, int] = MappingProxyType(
    {
        "image": 5 * 1024 * 1024,
        "video": 16 * 1024 * 1024,
        "audio": 16 * 1024 * 1024,
        "document": 100 * 1024 * 1024,
        "sticker": 500 * 1024,
    }
)
#: Seconds between two typing indicators while ``async with ctx.typing():`` runs; WhatsApp
#: shows one for about 25 s.
DEFAULT_TYPING_INTERVAL = 20.0
#: The port ``whizrouter fake-provider`` listens on.
DEFAULT_FAKE_PROVIDER_PORT = 8090
#: Seconds running handlers get at each reload of ``whizrouter dev``: an edit should not wait.
DEV_SHUTDOWN_GRACE = 2.0
#: The webhook ``whizrouter send`` posts to when no ``--url`` is given.
DEFAULT_SEND_URL = "http://127.0.0.1:8080/webhook"
#: The customer WhatsApp id test callbacks come from (``whizrouter send``, the test kit).
DEFAULT_TEST_WA_ID = "15551230001"
#: Seconds a conversation's state lives after its last write (``WHIZROUTER_STATE_TTL``).
DEFAULT_STATE_TTL = 30 * 24 * 3600.0
#: Seconds a handler run may take before it is cancelled and counted as failed
#: (``WhizRouter(handler_timeout=)``, ``WHIZROUTER_HANDLER_TIMEOUT``).
DEFAULT_HANDLER_TIMEOUT = 300.0
#: Largest request head (request line and headers) in bytes; past it the answer is 431
#: (``WHIZROUTER_HEADER_LIMIT``).
DEFAULT_HEADER_LIMIT = 16 * 1024
#: Seconds a client has to send a complete request head before it is disconnected.
DEFAULT_HEAD_TIMEOUT = 10.0
#: Seconds an idle kept-alive connection stays open (``WHIZROUTER_KEEPALIVE_TIMEOUT``).
DEFAULT_KEEPALIVE_TIMEOUT = 75.0
