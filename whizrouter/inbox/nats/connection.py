"""The NATS inbox's connection: connecting, TLS, reconnecting, and losing it for good.

A server that is not there at start fails the start after a few tries instead of hanging it;
once running, the client reconnects for as long as it takes (unless the URL limits it). While
the server is down, every reconnect attempt fails the same way, ten times a second by
default: one line every 10 s says so, with how many there were. A connection that closes
without our asking (``reconnect=false``, or ``max_reconnect_attempts`` ran out) can never
work again: the inbox's ``lost`` callback then stops the app, so that a supervisor starts a
fresh process instead of one answering 503 for ever.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from whizrouter.errors import ConfigurationError, InboxError
from whizrouter.log_throttle import LogThrottle

# The inbox's logger: moving code between modules must not change what operators filter on.
logger = logging.getLogger("whizrouter.inbox.nats")


class Connection:
    """One NATS client connection of an inbox, opened and closed with it.

    Args:
        servers: the NATS server URLs.
        options: extra keyword arguments for ``nats.connect`` (from the URL, or given in code).
        description: the inbox's description, without secrets, for logs and errors.
        lost: called when the connection closed for good without our asking.

    Attributes:
        closed: whether this side closed (or abandoned) the connection; it is not reopened.
    """

    def __init__(
        self,
        servers: Sequence[str],
        options: Mapping[str, Any],
        description: str,
        *,
        lost: Callable[[], None],
    ) -> None:
        self._servers = list(servers)
        self._options = dict(options)
        self._description = description
        self._lost = lost
        self._nc: Client | None = None
        self._jsc: JetStreamContext | None = None
        self._error_log = LogThrottle()
        self.closed = False

    @property
    def client(self) -> Client | None:
        """The open client, None before ``open`` and after ``close``."""
        return self._nc

    @property
    def connected(self) -> bool:
        """Whether the client is open and connected now (False while it reconnects)."""
        return self._nc is not None and self._nc.is_connected

    @property
    def max_payload(self) -> int:
        """The largest message the server takes, headers included (0 when not open)."""
        return self._nc.max_payload if self._nc is not None else 0

    def js(self) -> JetStreamContext:
        """The JetStream context of the open connection.

        Raises:
            InboxError: the inbox is not open.
        """
        if self._jsc is None or self.closed:
            raise InboxError(f"the NATS inbox {self._description} is not open; call open() first")
        return self._jsc

    async def open(self) -> None:
        """Connect, refuse a ``tls://`` URL answered in clear text, and start JetStream.

        Raises:
            ConfigurationError: the URL asks for TLS and the server does not use it.
            nats.errors.Error, OSError: the server could not be reached.
        """
        self.closed = False
        self._error_log = LogThrottle()
        options: dict[str, Any] = {
            "name": "whizrouter",
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
            **self._options,
        }
        # Once running, reconnect for as long as it takes (-1); but a server that is not
        # there at start fails the start after a few tries instead of hanging it.
        running_attempts = options.pop("max_reconnect_attempts", -1)
        self._nc = Client()
        await self._nc.connect(
            self._servers,
            max_reconnect_attempts=running_attempts if 0 < running_attempts < 3 else 3,
            **options,
        )
        self._nc.options["max_reconnect_attempts"] = running_attempts
        self._check_tls(options)
        self._jsc = self._nc.jetstream()

    def _check_tls(self, options: Mapping[str, Any]) -> None:
        """Refuse a ``tls://`` URL whose server turned out not to use TLS.

        nats-py starts TLS only when the server's greeting asks for it, so without this
        check a ``tls://`` URL talks in clear text to a server without TLS.

        Raises:
            ConfigurationError: the URL asks for TLS and the connection is not encrypted.
        """
        wanted = any(server.startswith("tls://") for server in self._servers)
        if not wanted or options.get("tls_handshake_first"):
            return  # with handshake first, nothing at all is sent before TLS is up
        # The server's greeting, as nats-py keeps it: nats-py has no public accessor.
        greeting: Mapping[str, Any] = getattr(self._nc, "_server_info", None) or {}
        if not greeting.get("tls_required"):
            raise ConfigurationError(
                f"the inbox URL {self._description} asks for TLS (tls://), but the NATS "
                "server does not use it, so the connection was not encrypted and any "
                "credentials in the URL went out in clear text. Enable TLS on the server "
                "(a tls block in its configuration), or use nats:// on a network you trust"
            )

    async def abandon(self) -> None:
        """Close at once, after a failed ``open``."""
        self.closed = True
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = self._jsc = None

    async def close(self) -> None:
        """Close after flushing what was sent without a reply (naks, progress acks)."""
        self.closed = True
        nc, self._nc, self._jsc = self._nc, None, None
        if nc is None:
            return
        try:
            await nc.drain()
        except Exception:  # already closed or reconnecting: close is all that is left
            with contextlib.suppress(Exception):
                await nc.close()

    # -- the client's callbacks ------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        if not self._error_log.due():
            return
        more = self._error_log.held_back()
        logger.warning(
            "NATS inbox %s: %s%s",
            self._description,
            exc,
            f" ({more} more errors in the last {self._error_log.interval:g} s)" if more else "",
        )

    async def _on_disconnected(self) -> None:
        if self.closed:
            return
        reconnecting = self._nc is not None and self._nc.options.get("allow_reconnect", True)
        logger.warning(
            "NATS inbox %s: disconnected%s",
            self._description,
            ", reconnecting" if reconnecting else " (reconnect=false: the app stops)",
        )

    async def _on_reconnected(self) -> None:
        logger.info("NATS inbox %s: reconnected", self._description)

    async def _on_closed(self) -> None:
        if not self.closed:
            self._lost()
