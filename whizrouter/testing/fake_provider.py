"""``FakeProvider``: a fake Whizard API on loopback that records every request and fails on cue.

It is a real aiohttp server on ``127.0.0.1`` (a random port) that speaks one API shape
(:mod:`whizrouter.testing.provider_api`), records every request as a
:class:`~whizrouter.testing.RecordedCall` and can be told to fail, answer slowly or drop the
connection (:mod:`whizrouter.testing.injections`), so client code and bots are tested over
real HTTP with nothing mocked away.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import socket
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from whizrouter.backoff import RetryPolicy
from whizrouter.client import KEY_HEADER, WhizardClient
from whizrouter.defaults import API_SHAPES, MEDIA_SIZE_LIMITS, ApiShape
from whizrouter.numbers import Number
from whizrouter.testing.error_bodies import meta_error_body
from whizrouter.testing.fake_media import FakeMedia, FakeMediaFile, MediaDownload
from whizrouter.testing.injections import FailureInjection, Injection, take
from whizrouter.testing.provider_api import (
    answer_mark_read,
    answer_send,
    classify,
    json_response,
    sent_id,
)
from whizrouter.testing.recorded_call import RecordedCall

#: A retry policy for tests: three quick retries (10, 20, 40 ms), ``Retry-After`` up to 1 s.
TEST_RETRY: Final = RetryPolicy(
    attempts=3, base=0.01, factor=2.0, max_delay=1.0, max_total=5.0, jitter=False
)


class FakeProvider(FailureInjection):
    """A fake Whizard API: a real aiohttp server on 127.0.0.1 that records every request.

    It serves the routes of one API shape, as the real provider does
    (:mod:`whizrouter.testing.provider_api`):

    * ``onprem``: ``POST /v1/messages`` (send), ``PUT /v1/messages/{id}`` (mark read);
    * ``cloud``: ``POST /messages`` (send, or mark read when the body has ``"status": "read"``);
    * both: ``GET`` and ``POST /v1/configs/webhook``, keeping the state in
      :attr:`webhook_config`;
    * media, in the shape's own routes (:mod:`whizrouter.testing.fake_media`): download
      (on Cloud in two steps, the file served below the fake's base URL where the media
      object's Meta URL points), upload and delete; :meth:`add_media` holds a file as if a
      customer had sent it, :attr:`media` has every file held;
    * the typing indicator (Cloud: a mark-read body with ``typing_indicator``), in
      :attr:`typing`.

    Every request must carry ``WHIZARD-KEY: <api_key>`` (or the key of one of its ``numbers``),
    else the answer is 401 with a ``meta`` error body. Sends get a fresh id (``wamid.fake-1``,
    ``wamid.fake-2`` ...). A malformed send gets the 400 the real API would give, in the
    shape's own error form; any other route gets a 404. Start it with
    ``async with FakeProvider() as fake:`` or :meth:`start`/:meth:`close`.

    Args:
        shape: the API shape to speak, ``"onprem"`` or ``"cloud"``.
        api_key: the key the fake accepts.
        host: the address to listen on (``127.0.0.1``; ``0.0.0.0`` to be reached from a
            container).
        port: the port to listen on (0: a free one).
        on_call: called with every request as it is recorded (``whizrouter fake-provider``
            and the dev console print them).
        routes: extra aiohttp routes served before the API's, such as the HTTP controls of
            ``whizrouter fake-provider``; they are not recorded.
        numbers: several numbers served at once, as a real provider does: each number's name
            (Cloud ``phone_number_id``, or on-premises the name of its webhook path) and its
            own key, also accepted; each key has its own webhook configuration.

    Attributes:
        shape: the API shape it speaks.
        api_key: the key it accepts.
        calls: every request received, in order (including refused and failed ones).
        webhook_config: the webhook configuration, as last set with ``POST``.
        media: the media files held, by media id (added with :meth:`add_media`, or uploaded).
        webhook_configs: each number's webhook configuration, by number name.
    """

    def __init__(
        self,
        shape: ApiShape = "onprem",
        api_key: str = "test-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_call: Callable[[RecordedCall], None] | None = None,
        routes: Iterable[web.AbstractRouteDef] = (),
        numbers: Mapping[str, str] | None = None,
    ) -> None:
        if shape not in API_SHAPES:
            raise ValueError(f"shape must be 'onprem' or 'cloud', not {shape!r}")
        self.shape: ApiShape = shape
        self.api_key = api_key
        self._host = host
        self._listen_port = port
        self._on_call = on_call
        self._routes = list(routes)
        self.calls: list[RecordedCall] = []
        self.webhook_config: dict[str, Any] = {}
        self._media = FakeMedia(shape)
        self.number_keys: dict[str, str] = dict(numbers or {})
        self.webhook_configs: dict[str, dict[str, Any]] = {name: {} for name in self.number_keys}
        self._failures: list[Injection] = []
        self._delays: list[Injection] = []
        self._drops: list[Injection] = []
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
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        """Start serving (on a random free port of 127.0.0.1 unless told otherwise)."""
        if self._runner is not None:
            return
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        # Large enough for the largest upload WhatsApp allows, with its form around it.
        app = web.Application(client_max_size=MEDIA_SIZE_LIMITS["document"] + 1024 * 1024)
        app.router.add_routes(self._routes)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._listen_port))
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

    def numbers(self) -> dict[str, Number]:
        """The ``numbers=`` of an app served by this fake: each number with its key, this
        fake's base URL and shape."""
        return {
            name: Number(key, self.base_url, self.shape) for name, key in self.number_keys.items()
        }

    def number_of(self, call: RecordedCall) -> str | None:
        """The number whose key ``call`` carried, or None (the fake's own ``api_key``, or
        none)."""
        given = call.headers.get(KEY_HEADER)
        return next((name for name, key in self.number_keys.items() if key == given), None)

    # ---------------------------------------------------------------- what was received

    @property
    def sent(self) -> list[RecordedCall]:
        """The send calls the fake accepted (answered 2xx), in order.

        Failed attempts are left out (they are in :attr:`calls`); a send the client gave up on
        after a delayed answer is in, as the real provider would have sent it.
        """
        return [call for call in self.calls if call.kind == "send" and call.ok]

    @property
    def media(self) -> dict[str, FakeMediaFile]:
        """The media files held, by media id."""
        return self._media.files

    def add_media(
        self,
        data: bytes,
        mime_type: str = "application/octet-stream",
        *,
        media_id: str | None = None,
        declare_size: bool = True,
    ) -> str:
        """Hold a file as if a customer had sent it, to download by the returned media id.

        Build the callback that carries it with :func:`~whizrouter.testing.media_callback`.
        With ``declare_size=False`` downloads do not state its size (sent chunked).
        """
        return self._media.add(data, mime_type, media_id=media_id, declare_size=declare_size)

    @property
    def typing(self) -> list[str]:
        """The message ids the fake accepted a typing indicator for, in order."""
        return [
            call.message_id
            for call in self.calls
            if call.kind == "typing" and call.ok and call.message_id is not None
        ]

    @property
    def send_requests(self) -> int:
        """How many send requests arrived, answered or not: a test asserts "sent once" with
        ``provider.send_requests == 1`` (a journaled send answered again makes none)."""
        return sum(1 for call in self.calls if call.kind == "send")

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
        media = self._media.classify(request.method, path)
        if media is not None:
            kind, message_id = media
        else:
            kind, message_id = classify(self.shape, request.method, path, request.raw_path, parsed)
        response = self._answer(request, kind, parsed, message_id, body)
        if response.status >= 300:
            if media is None and kind not in ("mark_read", "typing"):
                message_id = None
        elif kind == "send" and isinstance(response, web.Response):
            message_id = sent_id(response)
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
        if self._on_call is not None:
            self._on_call(call)
        delay = take(self._delays, path)
        if delay is not None:
            try:
                async with asyncio.timeout(delay.seconds):
                    await self._closing.wait()
            except TimeoutError:
                pass
        if take(self._drops, path) is not None and request.transport is not None:
            request.transport.abort()
        elif isinstance(response, MediaDownload):
            await response.send(request)
        return response

    def _answer(
        self, request: web.Request, kind: str, parsed: Any, named: str | None, body: bytes
    ) -> web.StreamResponse:
        given = request.headers.get(KEY_HEADER)
        number = next(
            (
                name
                for name, key in self.number_keys.items()
                if given is not None and hmac.compare_digest(given.encode(), key.encode())
            ),
            None,
        )
        if number is None and (
            given is None or not hmac.compare_digest(given.encode(), self.api_key.encode())
        ):
            reason = "Invalid api key" if given else f"Missing {KEY_HEADER} header"
            return json_response(401, meta_error_body(401, reason))
        failure = take(self._failures, request.path)
        if failure is not None:
            return web.Response(status=failure.status, body=failure.body, headers=failure.headers)
        if kind == "send":
            return answer_send(self.shape, parsed, lambda: f"wamid.fake-{next(self._ids)}")
        if kind in ("mark_read", "typing"):
            return answer_mark_read(self.shape, parsed)
        if kind.startswith("media_"):
            return self._media.answer(request, kind, named, body)
        if kind == "get_webhook":
            config = self.webhook_config if number is None else self.webhook_configs[number]
            return json_response(200, config)
        if kind == "set_webhook":
            if not isinstance(parsed, dict) or not isinstance(parsed.get("url"), str):
                return json_response(400, meta_error_body(400, "url is required"))
            # A real provider keeps one configuration per key (per number).
            if number is None:
                self.webhook_config = dict(parsed)
            else:
                self.webhook_configs[number] = dict(parsed)
            return json_response(200, dict(parsed))
        return json_response(
            404,
            meta_error_body(
                404,
                f"no route {request.method} {request.path} (this fake provider speaks the "
                f"{self.shape} shape)",
            ),
        )
