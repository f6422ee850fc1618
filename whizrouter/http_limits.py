"""The HTTP intake of ``whizrouter run``: what a client may send before a request exists.

aiohttp limits each header line (``max_line_size``, ``max_field_size``, 8 KiB) and the number
of headers (``max_headers``, 128), but not the header block as a whole (128 headers of 8 KiB
pass), nor how long a client may take to send it; its ``keepalive_timeout`` (an hour by
default) closes idle connections. This module adds what is missing at the protocol level,
for the low-level server ``whizrouter run`` serves on (:class:`IntakeServer`):

- the request head (request line and headers) is capped at ``header_limit`` bytes: past it
  the answer is 431 and the connection closes;
- a client that has not sent a complete request head ``head_timeout`` seconds after it
  connected, or after it began the head, is disconnected (no answer: there is no request);
- an idle kept-alive connection closes after ``keepalive_timeout`` (aiohttp's own setting).

The common case costs one method call per read: a callback's head and body arrive together,
so no timer is armed; one is only while a head is incomplete. Bodies are the receiver's
(``body_limit``, ``read_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from whizrouter.log_throttle import LogThrottle

log = logging.getLogger("whizrouter.http_limits")


# aiohttp's own, called without super()'s lookup: this runs for every read.
_parse = RequestHandler.data_received


class HeaderBlockTooLargeError(BadHttpMessage):
    """The request head passed the header limit: answered 431, then the connection closes."""

    code = 431


class IntakeProtocol(RequestHandler):
    """aiohttp's connection handler, with a cap on the request head and a deadline for it.

    Args:
        manager: the server.
        header_limit: the largest request head in bytes.
        head_timeout: seconds to send a complete request head.
        **kwargs: aiohttp's own (``keepalive_timeout``, ...).
    """

    __slots__ = ("_body", "_head_bytes", "_head_timeout", "_head_timer", "_header_limit", "_intake")

    def __init__(
        self,
        manager: IntakeServer,
        *,
        header_limit: int,
        head_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._intake = manager
        self._header_limit = header_limit
        self._head_timeout = head_timeout
        # Bytes of a request head received so far (0: none under way), the body of the last
        # request while it still arrives, and the head's deadline while one is armed.
        self._head_bytes = 0
        self._body: StreamReader | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # A connection that never sends a whole head is closed as one that sends it slowly.
        self._head_timer = self._loop.call_later(self._head_timeout, self._head_overdue)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        body = self._body
        if body is not None:
            if not body._eof:  # the attribute: is_eof() would be a call for every read
                _parse(self, data)
                return
            self._body = None
        if self._head_bytes or len(data) > self._header_limit:
            self._read_carefully(data)
            return
        # The usual read: a whole head (and its body) in fewer bytes than the limit.
        before = self._request_count
        _parse(self, data)
        if self._request_count == before:  # a head begun, not finished
            self._head_bytes = len(data)
            self._arm_head_timer()
            return
        if self._head_timer is not None:
            self._head_done()
            return
        messages = self._messages
        if messages:
            payload = messages[-1][1]
            if payload is not EMPTY_PAYLOAD and not payload._eof:
                self._body = payload

    def _read_carefully(self, data: bytes) -> None:
        """A read that continues a head, or is larger than the whole head may be."""
        before = self._request_count
        self._head_bytes += len(data)
        _parse(self, data)
        if self._request_count != before:  # one head or more completed
            if self._head_bytes > self._header_limit:
                # Head and body in one read: measure the heads themselves.
                self._check_heads(self._request_count - before)
            self._head_done()
        elif self._head_bytes > self._header_limit:
            self._refuse_head()
        else:
            self._arm_head_timer()

    def _head_done(self) -> None:
        """A head completed: no deadline until the next begins; its body may follow."""
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        messages = self._messages
        if messages:
            payload = messages[-1][1]
            if payload is not EMPTY_PAYLOAD and not payload._eof:
                self._body = payload

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and self._head_bytes and not self._force_close:
            self._head_timer = self._loop.call_later(self._head_timeout, self._head_overdue)

    def _check_heads(self, count: int) -> None:
        """Replace the first of the ``count`` heads just parsed that passes the limit, and
        any after it, by the 431 answer."""
        messages = self._messages
        for index in range(len(messages) - count, len(messages)):
            message = messages[index][0]
            if isinstance(message, _ErrInfo):
                continue
            size = len(message.method) + len(message.path) + 12  # "GET / HTTP/1.1\r\n"
            size += sum(len(name) + len(value) + 4 for name, value in message.raw_headers)
            if size > self._header_limit:
                while len(messages) > index:
                    messages.pop()
                self._refuse_head()
                return

    def _refuse_head(self) -> None:
        """Queue the 431 answer in place of a request; no more bytes are read."""
        self._intake.refused_heads += 1
        error = HeaderBlockTooLargeError(
            message=f"request head larger than {self._header_limit} bytes"
        )
        self._messages.append(
            (_ErrInfo(status=431, exc=error, message=error.message), EMPTY_PAYLOAD)
        )
        self._request_count += 1
        self._close = True  # data_received ignores the rest; the 431 closes the connection
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self._force_close or self.transport is None:
            return
        self._intake.slow_heads += 1
        if self._intake.slow_log.due():
            log.warning(
                "closed a connection from %s that sent no complete request head within "
                "%g s (%d so far): a slow or idle client",
                self.peername[0] if isinstance(self.peername, tuple) else "?",
                self._head_timeout,
                self._intake.slow_heads,
            )
        self.force_close()


class IntakeServer(web.Server):
    """aiohttp's low-level server, whose connections are :class:`IntakeProtocol`.

    Args:
        handler: answers each request.
        header_limit: the largest request head in bytes (431 past it).
        head_timeout: seconds a client has to send a complete request head.
        keepalive_timeout: seconds an idle kept-alive connection stays open.
        **kwargs: aiohttp's own server and connection arguments.
    """

    def __init__(
        self,
        handler: Any,
        *,
        header_limit: int,
        head_timeout: float,
        keepalive_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, keepalive_timeout=keepalive_timeout, **kwargs)
        self._header_limit = header_limit
        self._head_timeout = head_timeout
        #: Heads answered 431, and connections closed for a head not sent in time.
        self.refused_heads = 0
        self.slow_heads = 0
        self.slow_log = LogThrottle()

    def __call__(self) -> RequestHandler:
        return IntakeProtocol(
            self,
            loop=self._loop,
            header_limit=self._header_limit,
            head_timeout=self._head_timeout,
            **self._kwargs,
        )
