"""The webhook endpoint: acknowledge a callback only once its events are stored.

``POST /webhook`` checks auth (before reading the body), enforces its own body limit and read
deadline (also when mounted in someone else's aiohttp app, whose ``client_max_size`` it does
not rely on), parses with orjson, splits the callback into events, appends them to the inbox
and answers 200. Nothing user-written runs before the 200. ``GET /healthz`` reports liveness.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Sequence
from time import monotonic

import orjson
from aiohttp import web, web_urldispatcher
from aiohttp.http_exceptions import PayloadEncodingError

from whizrouter.errors import InboxError, InboxFullError
from whizrouter.inbox.base import RawEvent
from whizrouter.log_throttle import LogThrottle
from whizrouter.payloads import MAX_NESTING, nested_deeper_than, split_callback
from whizrouter.tallies import ACK_BUCKETS, Timings

log = logging.getLogger("whizrouter.receiver")

_JSON = "application/json"
#: Where the webhook and the health check are served, by ``whizrouter run`` and by default
#: when attached to an aiohttp app.
WEBHOOK_PATH = "/webhook"
HEALTH_PATH = "/healthz"
#: Seconds the provider is asked to wait before resending when we cannot store right now.
RETRY_AFTER_SECONDS = 5


def _answer(status: int, reason: str, **headers: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": reason}) if status != 200 else b'{"ok":true}',
        content_type=_JSON,
        headers=headers or None,
    )


# aiohttp's own answer to ``Expect``: 100 Continue, or 417 for an expectation it does not know.
_send_100_continue = web_urldispatcher._default_expect_handler


def _json_kind(value: object) -> str:
    """What a parsed JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a number"


# What to do about each refusal, for the warning the log gets (503s while starting or
# stopping are expected and only logged at debug; a full inbox has its own warning).
_ADVICE = {
    400: "nothing was stored: check what posts to this URL (--log-level DEBUG logs each one)",
    401: "if these are the provider's callbacks, the header it sends does not match "
    "WHIZROUTER_WEBHOOK_USER/PASSWORD: set WHIZROUTER_WEBHOOK_URL so startup registers "
    "the header again, or fix the credentials",
    408: "the client sent its body too slowly; if the provider is that slow, raise read_timeout",
    413: "if the provider sends callbacks this large, raise WHIZROUTER_BODY_LIMIT",
}


async def _not_connected(events: Sequence[RawEvent]) -> int:
    raise InboxError("no inbox to store callbacks in: the app has not started")


def _nothing_waiting() -> int:
    return 0


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


class Receiver:
    """The aiohttp handlers of the webhook and the health check.

    Callbacks are refused with 503 until ``connect`` names the inbox and ``accepting`` is
    set. Plain attributes rather than callables: each would cost every callback a call.

    Args:
        auth_header: the exact ``Authorization`` value required, or None for no auth.
        body_limit: the largest body accepted, in bytes (413 above).
        read_timeout: seconds to receive the whole body (408 after).
        health: returns the health report's fields.
        max_backlog: unsettled events at which the inbox counts as full (503 without
            reading the body).
    """

    def __init__(
        self,
        *,
        auth_header: str | None,
        body_limit: int,
        read_timeout: float,
        health: Callable[[], dict[str, object]],
        max_backlog: int,
    ) -> None:
        #: Whether callbacks are taken now (False before start, while stopping, after a
        #: failure); the app sets it.
        self.accepting = False
        self._append: Callable[[Sequence[RawEvent]], Awaitable[int]] = _not_connected
        self._backlog: Callable[[], int] = _nothing_waiting
        self._kinds: frozenset[str] | None = None
        self._max_backlog = max_backlog
        #: Callbacks answered 200: their events are stored (redeliveries included), except
        #: those of kinds this process leaves out (``unwanted``).
        self.acknowledged = 0
        #: Events answered 200 and not stored: of a kind no handler of this process takes.
        self.unwanted = 0
        #: Callbacks answered 503 because the inbox was full.
        self.refused_full = 0
        #: Callbacks answered 503 because the inbox failed to store them.
        self.store_failures = 0
        #: Callbacks refused, by HTTP status (400, 401, 408, 413, 503; 503 includes
        #: ``refused_full``).
        self.refused: dict[int, int] = {}
        #: Events handed to the inbox by kind, new and redelivered alike; ``duplicates``
        #: holds the redelivered ones (the metrics' ``stored`` is the difference).
        self.appended: dict[str, int] = {}
        #: Redelivered events the inbox dropped, by kind.
        self.duplicates: dict[str, int] = {}
        #: ``unwanted`` by kind.
        self.unwanted_kinds: dict[str, int] = {}
        #: Seconds from a callback's arrival at the handler to its 200, commit included.
        self.ack_timings = Timings(ACK_BUCKETS)
        #: The last failure to store a callback: (monotonic time, ``acknowledged`` then,
        #: what failed), or None; readiness reads it.
        self.last_store_failure: tuple[float, int, str] | None = None
        # A line per refused request would flood the log (and, when full, slow the drain).
        self._warnings = LogThrottle()
        self._auth = auth_header.encode() if auth_header else None
        self._body_limit = body_limit
        self._read_timeout = read_timeout
        self._health = health

    def connect(
        self,
        append: Callable[[Sequence[RawEvent]], Awaitable[int]],
        backlog: Callable[[], int],
        kinds: frozenset[str] | None = None,
    ) -> None:
        """Store callbacks with ``append`` (``Inbox.append``); ``backlog`` (``Inbox.backlog``)
        counts unsettled events against ``max_backlog``. With ``kinds``, only events of those
        kinds are stored; the others are answered 200 and counted in ``unwanted``."""
        self._append = append
        self._backlog = backlog
        self._kinds = kinds

    def _refusal(self, request: web.BaseRequest) -> web.Response | None:
        """The answer to a callback refused before its body is read, or None to go on."""
        if not self.accepting:
            return self._refuse(
                request,
                503,
                "not accepting callbacks right now (starting or shutting down); retry later",
                **{"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if self._auth is not None:
            # surrogateescape: a header of bytes that are not UTF-8 compares (and fails) as
            # its bytes instead of raising.
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            # Constant-time comparison, so the password cannot be guessed byte by byte.
            if not hmac.compare_digest(given, self._auth):
                return self._refuse(
                    request,
                    401,
                    "missing or wrong Authorization header",
                    **{"WWW-Authenticate": 'Basic realm="whizrouter"'},
                )
        if self._backlog() >= self._max_backlog:
            # Refuse before parsing: under overload every saved microsecond helps drain.
            return self._refuse_full()
        return None

    async def expect_continue(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """Handle ``Expect: 100-continue`` on ``POST /webhook``.

        A client that waits for ``100 Continue`` before sending its body gets the refusal
        instead when the callback would be refused anyway (auth, a declared size over the
        limit, a full backlog), so it never uploads the body.
        """
        refusal = self._refusal(request)
        if refusal is None and (request.content_length or 0) > self._body_limit:
            refusal = self._refuse(request, 413, f"body larger than {self._body_limit} bytes")
        if refusal is not None:
            # The body was never read: the connection cannot carry another request.
            refusal.force_close()
            return refusal
        await _send_100_continue(request)  # type: ignore[arg-type]  # reads no Request field
        return None

    async def webhook(self, request: web.BaseRequest) -> web.Response:
        """Handle ``POST /webhook``."""
        started = monotonic()
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            if request.content.is_eof():
                # The whole body is already buffered, so reading cannot stall: no timer.
                body = read_buffered(request, self._body_limit)
            else:
                async with asyncio.timeout(self._read_timeout):
                    body = await read_body(request, self._body_limit)
        except BodyTooLargeError:
            return self._refuse(request, 413, f"body larger than {self._body_limit} bytes")
        except TimeoutError:
            return self._refuse(request, 408, f"body not received within {self._read_timeout:g} s")
        except asyncio.IncompleteReadError:
            return self._refuse(request, 400, "body shorter than its Content-Length")
        except (PayloadEncodingError, web.RequestPayloadError) as exc:
            encoding = request.headers.get("Content-Encoding", "identity")
            refusal = self._refuse(
                request, 400, f"body could not be decoded (Content-Encoding: {encoding}): {exc}"
            )
            refusal.force_close()  # the rest of the stream cannot be read past the error
            return refusal
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return self._refuse(request, 400, f"malformed JSON: {exc}")
        if not isinstance(payload, dict):
            return self._refuse(request, 400, f"expected a JSON object, got {_json_kind(payload)}")
        if nested_deeper_than(payload, body):
            return self._refuse(
                request, 400, f"JSON nested too deeply to store (more than {MAX_NESTING} levels)"
            )
        try:
            events = split_callback(payload)
        except orjson.JSONEncodeError as exc:  # not expected within the nesting limit
            return self._refuse(request, 400, f"JSON that cannot be stored: {exc}")
        kinds = self._kinds
        if kinds is not None:
            wanted = [event for event in events if event.kind in kinds]
            if len(wanted) != len(events):
                self._count_unwanted(events, kinds)
            events = wanted
        if events:
            try:
                new = await self._append(events)
            except InboxFullError as exc:
                return self._refuse_full(str(exc))
            except Exception as exc:
                # Never 200 for an event we did not store; 503 makes the provider resend it.
                self._log_store_failure(exc, len(events))
                return self._refuse(
                    request,
                    503,
                    "could not store the callback; retry later",
                    **{"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            appended = self.appended
            for event in events:
                appended[event.kind] = appended.get(event.kind, 0) + 1
            if new != len(events):
                self._count_duplicates(events, len(events) - new)
        self.acknowledged += 1
        # Timings.observe, inlined: a call for every callback would cost more than its body.
        timings = self.ack_timings
        elapsed = monotonic() - started
        timings.counts[bisect_left(timings.bounds, elapsed)] += 1
        timings.total += elapsed
        return web.Response(body=b'{"ok":true}', content_type=_JSON)

    def _count_unwanted(self, events: Sequence[RawEvent], kinds: frozenset[str]) -> None:
        for event in events:
            if event.kind not in kinds:
                self.unwanted += 1
                self.unwanted_kinds[event.kind] = self.unwanted_kinds.get(event.kind, 0) + 1

    def _count_duplicates(self, events: Sequence[RawEvent], dropped: int) -> None:
        # The inbox says how many were new, not which: the provider resends whole callbacks,
        # so the dropped ones are taken from the end (exact unless one callback mixes kinds
        # and is only partly new, which the provider does not send).
        for event in events[len(events) - dropped :]:
            self.duplicates[event.kind] = self.duplicates.get(event.kind, 0) + 1

    def _refuse(
        self, request: web.BaseRequest, status: int, reason: str, **headers: str
    ) -> web.Response:
        """Answer ``status`` with ``reason``; count it, and say so in the log.

        Every refusal is logged at debug; a warning, with what to do, at most once per status
        every 10 s.
        """
        count = self.refused[status] = self.refused.get(status, 0) + 1
        log.debug("%d for POST %s from %s: %s", status, request.path, request.remote, reason)
        advice = _ADVICE.get(status)
        if advice is not None and self._warnings.due(str(status)):
            log.warning(
                "answered %d to a callback from %s: %s (%d so far); %s",
                status,
                request.remote,
                reason,
                count,
                advice,
            )
        return _answer(status, reason, **headers)

    def _log_store_failure(self, exc: Exception, events: int) -> None:
        """Say why a callback could not be stored: once every 10 s, since while the inbox is
        down (a NATS server restarting) every callback fails the same way. An ``InboxError``
        explains itself; anything else gets its traceback."""
        self.store_failures += 1
        self.last_store_failure = (monotonic(), self.acknowledged, str(exc))
        if not self._warnings.due("store"):
            log.debug("could not store a callback of %d events: %s", events, exc)
            return
        log.error(
            "could not store a callback of %d events; answering 503 so the provider retries "
            "(%d such callbacks so far): %s",
            events,
            self.store_failures,
            exc,
            exc_info=None if isinstance(exc, InboxError) else exc,
        )

    def _refuse_full(self, why: str | None = None) -> web.Response:
        """Answer 503 for a full inbox: its backlog bound, or (``why``, from the inbox) a
        limit of its own such as a NATS stream's ``max_bytes``."""
        self.refused_full += 1
        self.refused[503] = self.refused.get(503, 0) + 1
        if self._warnings.due("full"):
            log.warning(
                "inbox full: answering 503 so the provider retries later (%d refused so far); %s",
                self.refused_full,
                why
                or "the backlog is at its bound: handlers are slower than callbacks arrive, "
                "raise concurrency or max_backlog, or scale out",
            )
        return _answer(503, "inbox full; retry later", **{"Retry-After": str(RETRY_AFTER_SECONDS)})

    @property
    def max_backlog(self) -> int:
        """Unsettled events at which callbacks are refused (503) without being read."""
        return self._max_backlog

    async def healthz(self, request: web.BaseRequest) -> web.Response:
        """Handle ``GET /healthz``: 200 while accepting callbacks, 503 otherwise."""
        report = self._health()
        status = 200 if report.get("status") == "ok" else 503
        return web.Response(status=status, body=orjson.dumps(report), content_type=_JSON)
