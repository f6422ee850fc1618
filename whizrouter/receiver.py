"""The webhook endpoint over aiohttp: acknowledge a callback only once its events are stored.

``POST /webhook`` checks auth (before reading the body), enforces its own body limit and read
deadline (also when mounted in someone else's aiohttp app, whose ``client_max_size`` it does
not rely on), parses with orjson, splits the callback into events, appends them to the inbox
and answers 200. Nothing user-written runs before the 200. ``GET /healthz`` reports liveness.
What to answer is decided in ``whizrouter.intake``, shared with the ASGI application; this
module reads aiohttp's requests and writes its responses.
"""

from __future__ import annotations

import asyncio
from time import monotonic

from aiohttp import web, web_urldispatcher
from aiohttp.http_exceptions import PayloadEncodingError

from whizrouter.intake import (
    ACKNOWLEDGED,
    HEALTH_PATH,
    RETRY_AFTER_SECONDS,
    WEBHOOK_PATH,
    Intake,
    Refusal,
)

__all__ = [
    "HEALTH_PATH",
    "RETRY_AFTER_SECONDS",
    "WEBHOOK_PATH",
    "BodyTooLargeError",
    "Receiver",
    "read_body",
    "read_buffered",
]

_JSON = "application/json"


def _answer(refusal: Refusal) -> web.Response:
    return web.Response(
        status=refusal.status,
        body=refusal.body,
        content_type=_JSON,
        headers=refusal.headers or None,
    )


# aiohttp's own answer to ``Expect``: 100 Continue, or 417 for an expectation it does not know.
_send_100_continue = web_urldispatcher._default_expect_handler


class BodyTooLargeError(Exception):
    """The body passed the configured limit while being read."""


def _declared_length(request: web.BaseRequest) -> int | None:
    """The body's declared length, or None when it is unknown."""
    # With a Content-Encoding, aiohttp hands over the decoded bytes: the declared length is
    # the encoded one, so the body is read to its end instead (the limit then holds the
    # decoded size).
    encoding = request.headers.get("Content-Encoding")
    if encoding is not None and encoding.lower() != "identity":
        return None
    return request.content_length


def read_buffered(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body of a request whose body has all arrived (``request.content.is_eof()``),
    taken from aiohttp's buffer at once: the usual case, without a coroutine.

    Raises:
        BodyTooLargeError: the body (declared or actual) is larger than ``limit``.
        asyncio.IncompleteReadError: the client sent less than it declared.
    """
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise BodyTooLargeError
    body = request.content.read_nowait()
    if len(body) > limit:
        raise BodyTooLargeError
    if declared is not None and len(body) < declared:
        raise asyncio.IncompleteReadError(body, declared)
    return body


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """Read the whole request body, refusing more than ``limit`` bytes.

    Raises:
        BodyTooLargeError: the body (declared or actual) is larger than ``limit``.
        asyncio.IncompleteReadError: the client sent less than it declared.
    """
    declared = _declared_length(request)
    if declared is not None:
        if declared > limit:
            raise BodyTooLargeError
        return await request.content.readexactly(declared) if declared else b""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)


class Receiver(Intake):
    """The aiohttp handlers of the webhook and the health check; what they decide, and the
    counts ``/healthz`` reports, are ``Intake``'s (its arguments are these)."""

    async def expect_continue(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """Handle ``Expect: 100-continue`` on ``POST /webhook``.

        A client that waits for ``100 Continue`` before sending its body gets the refusal
        instead when the callback would be refused anyway (auth, a declared size over the
        limit, a full backlog), so it never uploads the body.
        """
        refusal = self.refusal_before_upload(request, request.content_length)
        if refusal is not None:
            answer = _answer(refusal)
            # The body was never read: the connection cannot carry another request.
            answer.force_close()
            return answer
        await _send_100_continue(request)  # type: ignore[arg-type]  # reads no Request field
        return None

    async def webhook(self, request: web.BaseRequest, number: str | None = None) -> web.Response:
        """Handle ``POST /webhook``; ``number``: the receiving number the path named."""
        started = monotonic()
        refusal = self.refusal(request)
        if refusal is not None:
            return _answer(refusal)
        try:
            if request.content.is_eof():
                # The whole body is already buffered, so reading cannot stall: no timer.
                body = read_buffered(request, self.body_limit)
            else:
                async with asyncio.timeout(self.read_timeout):
                    body = await read_body(request, self.body_limit)
        except BodyTooLargeError:
            return _answer(self.too_large(request))
        except TimeoutError:
            return _answer(self.too_slow(request))
        except asyncio.IncompleteReadError:
            return _answer(self.cut_short(request))
        except (PayloadEncodingError, web.RequestPayloadError) as exc:
            answer = _answer(self.undecodable(request, exc))
            answer.force_close()  # the rest of the stream cannot be read past the error
            return answer
        refusal = await self.store(request, body, number, started)
        if refusal is not None:
            return _answer(refusal)
        return web.Response(body=ACKNOWLEDGED, content_type=_JSON)

    async def number_webhook(self, request: web.Request) -> web.Response:
        """Handle ``POST /webhook/{number}``: a callback of one receiving number (on-premises
        callbacks name none, so each number has its own path; see ``whizrouter.numbers``)."""
        return await self.webhook(request, request.match_info["number"])

    @property
    def max_backlog(self) -> int:
        """Unsettled events at which callbacks are refused (503) without being read."""
        return self._max_backlog

    async def healthz(self, request: web.BaseRequest) -> web.Response:
        """Handle ``GET /healthz``: 200 while accepting callbacks, 503 otherwise."""
        status, body = self.health_answer()
        return web.Response(status=status, body=body, content_type=_JSON)
