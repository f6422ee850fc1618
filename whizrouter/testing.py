"""The whizrouter test kit: a fake provider server and builders for callback bodies.

:class:`FakeProvider` is a real aiohttp server on ``127.0.0.1`` (a random port) that speaks one
API shape, records every request and can be told to fail, so client code and bots are tested
over real HTTP with nothing mocked away::

    from whizrouter.testing import FakeProvider, text_callback

    async def test_echo() -> None:
        async with FakeProvider() as fake, fake.client() as client:
            message_id = await client.send_text("15551230001", "hi")
            [call] = await fake.wait_for(lambda call: call.kind == "send")
            assert call.json["text"] == {"body": "hi"}
            assert call.message_id == message_id

Failures are injected with :meth:`FakeProvider.fail_next`, using the error bodies re-exported
here from :mod:`whizrouter.error_bodies` for every form the real provider uses
(:func:`meta_error_body`, :func:`errors_list_body`, :func:`graph_error_body`,
:func:`html_error_page`, :func:`rate_limit_400_body`, :func:`restarting_555_body`, or ``b""``
for an empty body); slow answers with
:meth:`FakeProvider.delay_next`; dropped connections with :meth:`FakeProvider.drop_next`.

The callback builders (:func:`text_callback`, :func:`status_callback`,
:func:`message_callback`) produce webhook bodies of either shape, each with a fresh message id,
to feed a bot under test.

The ``whizrouter`` pytest plugin (:mod:`whizrouter.pytest_plugin`) wraps these in the
``fake_provider`` and ``whizard_client`` fixtures.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import unquote

import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from whizrouter.backoff import RetryPolicy
from whizrouter.callbacks import BUSINESS_NUMBER as BUSINESS_NUMBER
from whizrouter.callbacks import (
    DEFAULT_WA_ID,
    fresh_message_id,
    message_callback,
    status_callback,
    text_callback,
)
from whizrouter.callbacks import PHONE_NUMBER_ID as PHONE_NUMBER_ID
from whizrouter.callbacks import WABA_ID as WABA_ID
from whizrouter.client import KEY_HEADER, WhizardClient
from whizrouter.defaults import ApiShape
from whizrouter.error_bodies import (
    ONPREM_META,
    errors_list_body,
    graph_error_body,
    html_error_page,
    meta_error_body,
    rate_limit_400_body,
    restarting_555_body,
)

__all__ = [
    "DEFAULT_WA_ID",
    "TEST_RETRY",
    "FakeBody",
    "FakeProvider",
    "RecordedCall",
    "errors_list_body",
    "fresh_message_id",
    "graph_error_body",
    "html_error_page",
    "message_callback",
    "meta_error_body",
    "rate_limit_400_body",
    "restarting_555_body",
    "status_callback",
    "text_callback",
]

#: A retry policy for tests: three quick retries (10, 20, 40 ms), ``Retry-After`` up to 1 s.
TEST_RETRY: Final = RetryPolicy(
    attempts=3, base=0.01, factor=2.0, max_delay=1.0, max_total=5.0, jitter=False
)

#: What :meth:`FakeProvider.fail_next` accepts as a body: JSON (dict or list), text (HTML when
#: it starts with ``<``) or raw bytes (``b""`` for an empty body).
FakeBody = dict[str, Any] | list[Any] | str | bytes

_WEBHOOK_PATH: Final = "/v1/configs/webhook"


# --------------------------------------------------------------------------- recorded calls


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
        kind: ``"send"``, ``"mark_read"``, ``"get_webhook"``, ``"set_webhook"`` or ``"other"``.
        message_id: for a send, the id the fake assigned; for a mark-read, the id it names.
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


@dataclass(slots=True)
class _Injection:
    path: str | None
    times: int
    status: int = 0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def matches(self, path: str) -> bool:
        return self.times > 0 and (self.path is None or self.path == path)


def _take(injections: list[_Injection], path: str) -> _Injection | None:
    for injection in injections:
        if injection.matches(path):
            injection.times -= 1
            if injection.times <= 0:
                injections.remove(injection)
            return injection
    return None


def _json_response(status: int, data: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


# --------------------------------------------------------------------------- the fake


class FakeProvider:
    """A fake Whizard API: a real aiohttp server on 127.0.0.1 that records every request.

    It serves the routes of one API shape, as the real provider does:

    * ``onprem``: ``POST /v1/messages`` (send), ``PUT /v1/messages/{id}`` (mark read);
    * ``cloud``: ``POST /messages`` (send, or mark read when the body has ``"status": "read"``);
    * both: ``GET`` and ``POST /v1/configs/webhook``, keeping the state in
      :attr:`webhook_config`.

    Every request must carry ``WHIZARD-KEY: <api_key>``, else the answer is 401 with a ``meta``
    error body. Sends get a fresh id (``wamid.fake-1``, ``wamid.fake-2`` ...). A malformed send
    gets the 400 the real API would give, in the shape's own error form; any other route gets a
    404. Start it with ``async with FakeProvider() as fake:`` or :meth:`start`/:meth:`close`.

    Args:
        shape: the API shape to speak, ``"onprem"`` or ``"cloud"``.
        api_key: the key the fake accepts.

    Attributes:
        shape: the API shape it speaks.
        api_key: the key it accepts.
        calls: every request received, in order (including refused and failed ones).
        webhook_config: the webhook configuration, as last set with ``POST``.
    """

    def __init__(self, shape: ApiShape = "onprem", api_key: str = "test-key") -> None:
        if shape not in ("onprem", "cloud"):
            raise ValueError(f"shape must be 'onprem' or 'cloud', not {shape!r}")
        self.shape: ApiShape = shape
        self.api_key = api_key
        self.calls: list[RecordedCall] = []
        self.webhook_config: dict[str, Any] = {}
        self._failures: list[_Injection] = []
        self._delays: list[_Injection] = []
        self._drops: list[_Injection] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._changed: asyncio.Condition | None = None
        self._closing: asyncio.Event | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"FakeProvider(shape={self.shape!r}, {where}, calls={len(self.calls)})"

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """The URL to give the client, such as ``http://127.0.0.1:40123``.

        Raises:
            RuntimeError: the fake has not been started.
        """
        if self._port is None:
            raise RuntimeError("the FakeProvider is not running: call `await fake.start()` first")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        """Start serving on a random free port of 127.0.0.1."""
        if self._runner is not None:
            return
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._port = sock.getsockname()[1]
        self._runner = runner

    async def close(self) -> None:
        """Stop the server; delayed answers still pending are released at once."""
        if self._closing is not None:
            self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def client(self, *, timeout: float = 5.0, retry: RetryPolicy = TEST_RETRY) -> WhizardClient:
        """A :class:`~whizrouter.client.WhizardClient` pointed at this fake, with its shape and key.

        Args:
            timeout: the client's per-request timeout.
            retry: the client's retry policy; :data:`TEST_RETRY` retries within milliseconds.

        Returns:
            A new client; close it (``async with``) when done.
        """
        return WhizardClient(self.api_key, self.base_url, self.shape, timeout=timeout, retry=retry)

    # ---------------------------------------------------------------- what was received

    @property
    def sent(self) -> list[RecordedCall]:
        """The send calls the fake accepted (answered 2xx), in order.

        Failed attempts are left out (they are in :attr:`calls`); a send the client gave up on
        after a delayed answer is in, as the real provider would have sent it.
        """
        return [call for call in self.calls if call.kind == "send" and call.ok]

    @property
    def marked_read(self) -> list[str]:
        """The message ids the fake accepted a mark-read for, in order."""
        return [
            call.message_id
            for call in self.calls
            if call.kind == "mark_read" and call.ok and call.message_id is not None
        ]

    async def wait_for(
        self,
        predicate_or_count: Callable[[RecordedCall], bool] | int,
        timeout: float = 5.0,
        *,
        count: int = 1,
    ) -> list[RecordedCall]:
        """Wait until enough calls have arrived, and return them.

        Waits on a condition the server notifies with every request: no polling.

        Args:
            predicate_or_count: a number of calls (any kind) to wait for, or a predicate that
                selects the calls to wait for, such as ``lambda call: call.kind == "send"``.
            timeout: seconds to wait at most.
            count: with a predicate, how many matching calls to wait for.

        Returns:
            With a number: all calls received so far. With a predicate: the matching calls.

        Raises:
            AssertionError: not enough calls arrived in time; the message lists what did.
            RuntimeError: the fake has not been started.
        """
        if self._changed is None:
            raise RuntimeError("the FakeProvider is not running: call `await fake.start()` first")
        if isinstance(predicate_or_count, int):
            wanted = predicate_or_count

            def select() -> list[RecordedCall]:
                return list(self.calls)
        else:
            wanted = count
            predicate = predicate_or_count

            def select() -> list[RecordedCall]:
                return [call for call in self.calls if predicate(call)]

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(select()) >= wanted)
        except TimeoutError:
            recorded = "\n".join("  " + call.describe() for call in self.calls) or "  (none)"
            raise AssertionError(
                f"waited {timeout:g} s for {wanted} matching call(s), got {len(select())}; "
                f"recorded calls:\n{recorded}"
            ) from None
        return select()

    def reset(self) -> None:
        """Forget the recorded calls and any pending failures, delays and drops."""
        self.calls.clear()
        self._failures.clear()
        self._delays.clear()
        self._drops.clear()

    # ---------------------------------------------------------------- failure injection

    def fail_next(
        self,
        status: int,
        body: FakeBody | None = None,
        *,
        times: int = 1,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with an error instead of serving them.

        Injections queue up: the oldest one that matches a request answers it.

        Args:
            status: the HTTP status to answer with, such as 503, 429 or 555.
            body: the body; default :func:`meta_error_body` for ``status``. A dict or list is
                sent as JSON, a str as HTML (when it starts with ``<``) or plain text, bytes as
                they are (``b""`` for an empty body).
            times: how many requests to fail.
            path: fail only requests to this exact path (such as ``"/v1/messages"``).
            headers: extra answer headers, such as ``{"Retry-After": "1"}``.
        """
        if body is None:
            body = meta_error_body(status, f"injected failure {status}")
        answer_headers: dict[str, str] = {}
        if isinstance(body, dict | list):
            raw = orjson.dumps(body)
            answer_headers["Content-Type"] = "application/json"
        elif isinstance(body, str):
            raw = body.encode()
            html = body.lstrip().startswith("<")
            answer_headers["Content-Type"] = "text/html" if html else "text/plain"
        else:
            raw = bytes(body)
        answer_headers.update(headers or {})
        self._failures.append(
            _Injection(path=path, times=times, status=status, body=raw, headers=answer_headers)
        )

    def delay_next(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Hold back the answer to the next ``times`` matching requests, to provoke timeouts.

        The request is still recorded and served (the provider got it); only the answer waits.
        :meth:`close` releases pending answers at once.

        Args:
            seconds: how long to hold each answer.
            times: how many requests to delay.
            path: delay only requests to this exact path.
        """
        self._delays.append(_Injection(path=path, times=times, seconds=seconds))

    def drop_next(self, *, times: int = 1, path: str | None = None) -> None:
        """Close the connection of the next ``times`` matching requests without answering.

        The request is recorded (and a send is counted as accepted by the provider), so this
        models a connection reset after the provider took the request.

        Args:
            times: how many requests to drop.
            path: drop only requests to this exact path.
        """
        self._drops.append(_Injection(path=path, times=times))

    # ---------------------------------------------------------------- serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._changed is not None
        assert self._closing is not None
        body = await request.read()
        try:
            parsed: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        path = request.path
        kind, message_id = self._classify(request.method, path, request.raw_path, parsed)
        response = self._answer(request, kind, parsed)
        if response.status >= 300:
            message_id = message_id if kind == "mark_read" else None
        elif kind == "send":
            message_id = self._assign_id(response)
        call = RecordedCall(
            method=request.method,
            path=path,
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            json=parsed,
            body=body,
            status=response.status,
            kind=kind,
            message_id=message_id,
            at=asyncio.get_running_loop().time(),
        )
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        delay = _take(self._delays, path)
        if delay is not None:
            try:
                async with asyncio.timeout(delay.seconds):
                    await self._closing.wait()
            except TimeoutError:
                pass
        if _take(self._drops, path) is not None and request.transport is not None:
            request.transport.abort()
        return response

    def _classify(
        self, method: str, path: str, raw_path: str, parsed: Any
    ) -> tuple[str, str | None]:
        if path == _WEBHOOK_PATH:
            return {"GET": "get_webhook", "POST": "set_webhook"}.get(method, "other"), None
        if self.shape == "onprem":
            if method == "POST" and path == "/v1/messages":
                return "send", None
            if method == "PUT" and path.startswith("/v1/messages/"):
                segment = raw_path.split("?", 1)[0].rsplit("/", 1)[-1]
                return "mark_read", unquote(segment)
        elif method == "POST" and path == "/messages":
            if isinstance(parsed, dict) and parsed.get("status") == "read":
                message_id = parsed.get("message_id")
                return "mark_read", message_id if isinstance(message_id, str) else None
            return "send", None
        return "other", None

    def _answer(self, request: web.Request, kind: str, parsed: Any) -> web.Response:
        given = request.headers.get(KEY_HEADER)
        if given is None or not hmac.compare_digest(given.encode(), self.api_key.encode()):
            reason = "Invalid api key" if given else f"Missing {KEY_HEADER} header"
            return _json_response(401, meta_error_body(401, reason))
        failure = _take(self._failures, request.path)
        if failure is not None:
            return web.Response(status=failure.status, body=failure.body, headers=failure.headers)
        if kind == "send":
            return self._send(parsed)
        if kind == "mark_read":
            return self._mark_read(parsed)
        if kind == "get_webhook":
            return _json_response(200, self.webhook_config)
        if kind == "set_webhook":
            if not isinstance(parsed, dict) or not isinstance(parsed.get("url"), str):
                return _json_response(400, meta_error_body(400, "url is required"))
            self.webhook_config = dict(parsed)
            return _json_response(200, self.webhook_config)
        return _json_response(
            404,
            meta_error_body(
                404,
                f"no route {request.method} {request.path} (this fake provider speaks the "
                f"{self.shape} shape)",
            ),
        )

    def _bad_request(self, code: int, problem: str) -> web.Response:
        if self.shape == "cloud":
            return _json_response(400, graph_error_body(100, f"(#100) {problem}"))
        return _json_response(400, errors_list_body(code, "Invalid request", problem))

    def _send(self, parsed: Any) -> web.Response:
        if not isinstance(parsed, dict):
            return self._bad_request(1008, "the body must be a JSON object")
        if self.shape == "cloud" and parsed.get("messaging_product") != "whatsapp":
            return self._bad_request(100, "The parameter messaging_product is required.")
        to = parsed.get("to")
        if not isinstance(to, str) or not to:
            return self._bad_request(1008, "The parameter to is required.")
        kind = parsed.get("type", "text")
        if not isinstance(kind, str) or kind not in parsed:
            return self._bad_request(1008, f"The parameter {kind} is required.")
        message_id = f"wamid.fake-{next(self._ids)}"
        if self.shape == "cloud":
            answer: dict[str, Any] = {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": message_id}],
            }
        else:
            answer = {"messages": [{"id": message_id}], "meta": dict(ONPREM_META)}
        return _json_response(200, answer)

    def _mark_read(self, parsed: Any) -> web.Response:
        if self.shape == "cloud":
            if parsed.get("messaging_product") != "whatsapp" or not parsed.get("message_id"):
                return self._bad_request(100, "messaging_product and message_id are required.")
            return _json_response(200, {"success": True})
        if not isinstance(parsed, dict) or parsed.get("status") != "read":
            return self._bad_request(1009, 'The body must be {"status": "read"}.')
        return _json_response(200, {})

    @staticmethod
    def _assign_id(response: web.Response) -> str | None:
        try:
            message_id = orjson.loads(response.body)["messages"][0]["id"]  # type: ignore[arg-type]
        except (orjson.JSONDecodeError, TypeError, LookupError):
            return None  # an injected 2xx body without an id
        return message_id if isinstance(message_id, str) else None


def __getattr__(name: str) -> Any:
    # BotTester needs the app, which needs this module's neighbours: import it on first use.
    if name == "BotTester":
        from whizrouter.bot_tester import BotTester

        return BotTester
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
