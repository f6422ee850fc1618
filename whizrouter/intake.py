"""What the webhook decides about a callback, whichever server carries it.

A callback is refused before its body is read (not accepting, wrong auth, a full inbox), or
its body is parsed, split into events and stored, and only then acknowledged. ``Intake``
takes these decisions and keeps the counts ``/healthz`` reports; the aiohttp receiver
(``receiver.py``) and the ASGI application (``asgi.py``) read the body their own way and
answer what it decides, so both behave exactly alike.
"""

from __future__ import annotations

import hmac
import logging
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import monotonic
from typing import NamedTuple, Protocol

import orjson

from whizrouter.errors import InboxError, InboxFullError
from whizrouter.inbox.base import RawEvent
from whizrouter.log_throttle import LogThrottle
from whizrouter.payloads import MAX_NESTING, nested_deeper_than, split_callback
from whizrouter.tallies import ACK_BUCKETS, Timings

log = logging.getLogger("whizrouter.receiver")

#: Where the webhook and the health check are served, by ``whizrouter run`` and by default
#: when attached to an aiohttp app or served over ASGI.
WEBHOOK_PATH = "/webhook"
HEALTH_PATH = "/healthz"
#: Seconds the provider is asked to wait before resending when we cannot store right now.
RETRY_AFTER_SECONDS = 5
#: The body of every 200 to a callback.
ACKNOWLEDGED = b'{"ok":true}'

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
_RETRY_LATER = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class CallbackRequest(Protocol):
    """What the decisions read of a request: aiohttp's ``BaseRequest`` is one as it is.

    ``headers`` must find a name in lower case; ``remote`` and ``path`` are read only to log
    a refusal.
    """

    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def remote(self) -> str | None: ...
    @property
    def path(self) -> str: ...


class Refusal(NamedTuple):
    """A callback's answer other than 200: its status, why (the JSON body's ``error``) and
    extra headers."""

    status: int
    reason: str
    headers: Mapping[str, str]

    @property
    def body(self) -> bytes:
        """The answer's JSON body."""
        return orjson.dumps({"error": self.reason})


def json_kind(value: object) -> str:
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


async def _not_connected(events: Sequence[RawEvent]) -> int:
    raise InboxError("no inbox to store callbacks in: the app has not started")


def _nothing_waiting() -> int:
    return 0


class Intake:
    """The webhook's decisions and counts, without a server.

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
        #: Seconds from a callback's arrival at the server to its 200, commit included.
        self.ack_timings = Timings(ACK_BUCKETS)
        #: The last failure to store a callback: (monotonic time, ``acknowledged`` then,
        #: what failed), or None; readiness reads it.
        self.last_store_failure: tuple[float, int, str] | None = None
        # A line per refused request would flood the log (and, when full, slow the drain).
        self._warnings = LogThrottle()
        self._auth = auth_header.encode() if auth_header else None
        self.body_limit = body_limit
        self.read_timeout = read_timeout
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

    def refusal(self, request: CallbackRequest) -> Refusal | None:
        """The answer to a callback refused before its body is read, or None to go on."""
        if not self.accepting:
            return self.refuse(
                request,
                503,
                "not accepting callbacks right now (starting or shutting down); retry later",
                _RETRY_LATER,
            )
        if self._auth is not None:
            # surrogateescape: a header of bytes that are not UTF-8 compares (and fails) as
            # its bytes instead of raising.
            given = request.headers.get("authorization", "").encode("utf-8", "surrogateescape")
            # Constant-time comparison, so the password cannot be guessed byte by byte.
            if not hmac.compare_digest(given, self._auth):
                return self.refuse(
                    request,
                    401,
                    "missing or wrong Authorization header",
                    {"WWW-Authenticate": 'Basic realm="whizrouter"'},
                )
        if self._backlog() >= self._max_backlog:
            # Refuse before parsing: under overload every saved microsecond helps drain.
            return self.refuse_full()
        return None

    def refusal_before_upload(
        self, request: CallbackRequest, declared: int | None
    ) -> Refusal | None:
        """``refusal``, or 413 for a ``declared`` length over the limit: the answer to a
        client that waits for ``100 Continue`` before it sends the body."""
        refusal = self.refusal(request)
        if refusal is None and (declared or 0) > self.body_limit:
            refusal = self.too_large(request)
        return refusal

    def too_large(self, request: CallbackRequest) -> Refusal:
        """413: the body passed the limit."""
        return self.refuse(request, 413, f"body larger than {self.body_limit} bytes")

    def too_slow(self, request: CallbackRequest) -> Refusal:
        """408: the body did not arrive within the read deadline."""
        return self.refuse(request, 408, f"body not received within {self.read_timeout:g} s")

    def cut_short(self, request: CallbackRequest) -> Refusal:
        """400: the body ended before its declared length."""
        return self.refuse(request, 400, "body shorter than its Content-Length")

    def undecodable(self, request: CallbackRequest, error: object) -> Refusal:
        """400: the body's ``Content-Encoding`` could not be undone."""
        encoding = request.headers.get("content-encoding", "identity")
        return self.refuse(
            request, 400, f"body could not be decoded (Content-Encoding: {encoding}): {error}"
        )

    async def store(
        self,
        request: CallbackRequest,
        body: bytes,
        number: str | None = None,
        started: float | None = None,
    ) -> Refusal | None:
        """Parse ``body``, split it into events and store those of wanted kinds.

        ``number`` is the receiving number the path named (several numbers, on-premises);
        ``started``, the ``time.monotonic()`` of the request's arrival, times the answer for
        ``whizrouter_ack_seconds``.

        Returns:
            None once the events are stored (the callback is to be answered 200 with
            ``ACKNOWLEDGED``), or the refusal to answer instead.
        """
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return self.refuse(request, 400, f"malformed JSON: {exc}")
        if not isinstance(payload, dict):
            return self.refuse(request, 400, f"expected a JSON object, got {json_kind(payload)}")
        if nested_deeper_than(payload, body):
            return self.refuse(
                request, 400, f"JSON nested too deeply to store (more than {MAX_NESTING} levels)"
            )
        try:
            events = split_callback(payload, number)
        except orjson.JSONEncodeError as exc:  # not expected within the nesting limit
            return self.refuse(request, 400, f"JSON that cannot be stored: {exc}")
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
                return self.refuse_full(str(exc))
            except Exception as exc:
                # Never 200 for an event we did not store; 503 makes the provider resend it.
                self._log_store_failure(exc, len(events))
                return self.refuse(
                    request, 503, "could not store the callback; retry later", _RETRY_LATER
                )
            appended = self.appended
            for event in events:
                appended[event.kind] = appended.get(event.kind, 0) + 1
            if new != len(events):
                self._count_duplicates(events, len(events) - new)
        self.acknowledged += 1
        if started is not None:
            # Timings.observe, inlined: a call for every callback would cost more than its body.
            timings = self.ack_timings
            elapsed = monotonic() - started
            timings.counts[bisect_left(timings.bounds, elapsed)] += 1
            timings.total += elapsed
        return None

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

    def refuse(
        self,
        request: CallbackRequest,
        status: int,
        reason: str,
        headers: Mapping[str, str] | None = None,
    ) -> Refusal:
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
        return Refusal(status, reason, headers or {})

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

    def refuse_full(self, why: str | None = None) -> Refusal:
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
        return Refusal(503, "inbox full; retry later", _RETRY_LATER)

    @property
    def max_backlog(self) -> int:
        """Unsettled events at which callbacks are refused (503) without being read."""
        return self._max_backlog

    def health_answer(self) -> tuple[int, bytes]:
        """``GET /healthz``'s status (200 while accepting callbacks, 503 otherwise) and body."""
        report = self._health()
        return 200 if report.get("status") == "ok" else 503, orjson.dumps(report)
