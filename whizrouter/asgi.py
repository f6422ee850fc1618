"""The bot as an ASGI application: the webhook and ``/healthz`` for any ASGI server or app.

``asgi_app(bot)`` answers exactly what ``whizrouter run`` answers (the decisions are
``whizrouter.intake``'s): Basic auth before the body is read, 413 over the body limit, 408
past the read deadline, 400 with a reason, 200 only once the events are stored, 503 with
``Retry-After`` while the bot is not accepting or its inbox is full. Served as the whole
application (``uvicorn bot:asgi``), it starts and stops the bot with the server's lifespan;
mounted in FastAPI or Starlette, which do not pass their lifespan to mounted apps, the host
app's lifespan starts it: ``FastAPI(lifespan=lifespan(bot))``, or ``async with bot:`` inside
a lifespan of your own. Written against the ASGI 3 specification alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import AbstractAsyncContextManager
from time import monotonic
from typing import Any

from whizrouter.app import WhizRouter
from whizrouter.intake import ACKNOWLEDGED, HEALTH_PATH, WEBHOOK_PATH, Intake, Refusal
from whizrouter.log_throttle import LogThrottle
from whizrouter.numbers import number_in_path
from whizrouter.read_deadlines import ReadDeadlines

__all__ = ["ASGIApp", "Receive", "Scope", "Send", "asgi_app", "lifespan"]

log = logging.getLogger("whizrouter.asgi")

#: The ASGI 3 callable's types, as Starlette and FastAPI spell them.
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]
# zlib's window bits for each Content-Encoding aiohttp also undoes (deflate: zlib-wrapped,
# and raw when that fails, as aiohttp reads it).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _Request:
    """One HTTP scope as ``Intake`` reads a request."""

    __slots__ = ("headers", "path", "remote")

    def __init__(self, scope: Scope, path: str) -> None:
        # Header names arrive in lower case; values are decoded as aiohttp decodes them, so
        # an Authorization header of bytes that are not UTF-8 compares as its bytes.
        self.headers: Mapping[str, str] = {
            name.decode("latin-1"): value.decode("utf-8", "surrogateescape")
            for name, value in scope["headers"]
        }
        client = scope.get("client")
        self.remote: str | None = client[0] if client else None
        self.path = path


class _TooLarge(Exception):
    """The body passed the limit while being read or decoded."""


class _Disconnected(Exception):
    """The client went away before the whole body arrived."""


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the usual case: one message
        if len(body) > limit:
            raise _TooLarge
        return body
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            raise _TooLarge
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            if size > limit:
                raise _TooLarge
            return b"".join(chunks)


def _decode(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` with its ``Content-Encoding`` undone, refusing more than ``limit`` bytes
    decoded.

    Raises:
        _TooLarge: the decoded body is larger than ``limit``.
        ValueError: the encoding is unknown or the body is not validly encoded.
    """
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise ValueError(f"unsupported encoding {encoding!r}; send gzip, deflate or none")
    for bits in (wbits, -zlib.MAX_WBITS) if encoding == "deflate" else (wbits,):
        decoder = zlib.decompressobj(bits)
        try:
            decoded = decoder.decompress(body, limit + 1)
        except zlib.error as exc:
            error = exc
            continue
        if len(decoded) > limit:
            raise _TooLarge
        if not decoder.eof:
            raise ValueError("the compressed body ends early")
        return decoded
    raise ValueError(str(error))


class _WebhookApp:
    """The ASGI application ``asgi_app`` returns."""

    def __init__(self, bot: WhizRouter, path: str, health_path: str | None) -> None:
        self._bot = bot
        self._intake: Intake = bot.receiver
        self._webhook_path = path if bot.role != "worker" else None
        self._health_path = health_path
        # Several numbers: an on-premises number's callbacks come to ``<path>/<name>``.
        self._numbered = bot.numbers is not None
        self._warnings = LogThrottle()
        # One timer for every body read's deadline instead of one per request.
        self._deadlines = ReadDeadlines(self._intake.read_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        # Mounted under a prefix, ``path`` starts with ``root_path`` (servers and Starlette
        # today); older Starlette strips it instead.
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        method = scope["method"]
        number = None
        if path == self._webhook_path or (
            self._numbered
            and self._webhook_path is not None
            and (number := number_in_path(self._webhook_path, path)) is not None
        ):
            if method != "POST":
                await _answer(send, 405, b'{"error":"method not allowed"}', [(b"allow", b"POST")])
                return
            await self._webhook(scope, receive, send, path, number)
        elif path == self._health_path:
            if method not in ("GET", "HEAD"):
                await _answer(
                    send, 405, b'{"error":"method not allowed"}', [(b"allow", b"GET, HEAD")]
                )
                return
            status, body = self._intake.health_answer()
            await _answer(send, status, b"" if method == "HEAD" else body, length=len(body))
        else:
            await _answer(send, 404, b'{"error":"not found"}')

    async def _webhook(
        self, scope: Scope, receive: Receive, send: Send, path: str, number: str | None
    ) -> None:
        started = monotonic()
        intake = self._intake
        request = _Request(scope, path)
        headers = request.headers
        encoding = headers.get("content-encoding", "identity").lower()
        declared_text = headers.get("content-length")
        declared = int(declared_text) if declared_text and declared_text.isdigit() else None
        # The body is not read before these: a client that waits for 100 Continue gets the
        # refusal instead (servers send 100 only once the body is asked for).
        refusal = intake.refusal_before_upload(request, declared if encoding == "identity" else 0)
        if refusal is not None:
            if refusal.status == 503 and not self._bot.started:
                self._warn_not_started()
            # A client waiting for 100 Continue, or one still sending a body too large,
            # cannot go on with this connection.
            await _refuse(send, refusal, close=refusal.status == 413 or "expect" in headers)
            return
        deadlines = self._deadlines
        if deadlines.seconds != intake.read_timeout:  # the setting changed
            deadlines = self._deadlines = ReadDeadlines(intake.read_timeout)
        task = deadlines.begin(started)
        try:
            body = await _read_body(receive, intake.body_limit)
        except _TooLarge:
            await _refuse(send, intake.too_large(request), close=True)
            return
        except asyncio.CancelledError:
            if not deadlines.cut(task):
                raise
            await _refuse(send, intake.too_slow(request), close=True)
            return
        except _Disconnected:
            return  # nobody to answer, and nothing was stored
        finally:
            deadlines.end(task)
        if declared is not None and len(body) < declared:
            await _refuse(send, intake.cut_short(request))
            return
        if encoding != "identity":
            try:
                body = _decode(body, encoding, intake.body_limit)
            except _TooLarge:
                await _refuse(send, intake.too_large(request))
                return
            except ValueError as exc:
                await _refuse(send, intake.undecodable(request, exc))
                return
        refusal = await intake.store(request, body, number, started)
        if refusal is not None:
            await _refuse(send, refusal)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(ACKNOWLEDGED)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": ACKNOWLEDGED})

    def _warn_not_started(self) -> None:
        if self._warnings.due():
            log.warning(
                "a callback arrived but the bot is not running, so it got 503: when the bot "
                "is mounted in another app, start it from that app's lifespan, e.g. "
                "FastAPI(lifespan=whizrouter.asgi.lifespan(bot)) (see docs/embedding.md)"
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Start the bot with the server and stop it (draining handlers) when it stops."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._bot.start()
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._bot.stop()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    length: int | None = None,
) -> None:
    size = b"%d" % (len(body) if length is None else length)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", size), *(headers or ())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, refusal: Refusal, *, close: bool = False) -> None:
    headers = [(name.lower().encode(), value.encode()) for name, value in refusal.headers.items()]
    if close:
        headers.append((b"connection", b"close"))
    await _answer(send, refusal.status, refusal.body, headers)


def asgi_app(
    bot: WhizRouter, *, path: str = WEBHOOK_PATH, health_path: str | None = HEALTH_PATH
) -> ASGIApp:
    """An ASGI 3 application serving ``bot``'s webhook at ``path`` (``POST``) and its health
    check at ``health_path`` (``GET``/``HEAD``; None: not served); 404 for other paths.

    Served as the whole application it starts and stops the bot with the server's lifespan.
    Mounted under a prefix in another app, the paths are below that prefix
    (``app.mount("/whatsapp", asgi_app(bot))``: ``POST /whatsapp/webhook``), and the host
    app's lifespan must start the bot (``lifespan``). In the ``worker`` role only the health
    check is served.
    """
    return _WebhookApp(bot, path, health_path)


def lifespan(bot: WhizRouter) -> Callable[[object], AbstractAsyncContextManager[None]]:
    """A lifespan for a host app (FastAPI's or Starlette's ``lifespan=``) that starts ``bot``
    with it and stops it, draining running handlers, when it shuts down.

    A host app with a lifespan of its own runs ``async with bot:`` inside it instead.
    """

    @contextlib.asynccontextmanager
    async def run(_: object) -> AsyncIterator[None]:
        async with bot:
            yield

    return run
