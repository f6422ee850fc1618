"""The standalone process: serve the app, and drain on SIGTERM or SIGINT.

``whizrouter run`` serves its two routes with aiohttp's low-level server and routes them by
hand (:func:`request_handler`): for two fixed paths, an ``Application``'s router, match info,
middleware chain and signals cost 18,000 to 21,000 instructions a request (valgrind), 6 to 7 %
of a bare aiohttp server's whole request. An app attached to your own aiohttp app keeps its router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from whizrouter.errors import WhizrouterError
from whizrouter.http_limits import IntakeServer
from whizrouter.log_throttle import LogThrottle
from whizrouter.metrics import METRICS_PATH, Metrics
from whizrouter.numbers import Numbers, number_in_path
from whizrouter.readiness import READY_PATH, Readiness
from whizrouter.receiver import HEALTH_PATH, WEBHOOK_PATH, Receiver
from whizrouter.runtime import describe_running_loop, gc_threshold_from_env, tune_gc
from whizrouter.settings import Settings

log = logging.getLogger("whizrouter.server")


class ServedApp(Protocol):
    """What serving needs of a ``WhizRouter``: declared here, so that the app's module, which
    calls ``serve_forever`` from ``WhizRouter.run``, is not imported back."""

    @property
    def receiver(self) -> Receiver: ...
    @property
    def role(self) -> str: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def failure(self) -> BaseException | None: ...
    @property
    def numbers(self) -> Numbers | None: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def readiness(self) -> Readiness: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def wait_failed(self) -> BaseException: ...
    def stop_accepting(self) -> None: ...


RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def request_handler(app: ServedApp) -> RequestHandler:
    """What ``whizrouter run`` answers: ``POST /webhook`` (not in the worker role) and
    ``GET``/``HEAD /healthz``, ``/readyz`` and ``/metrics`` (unless it has a port of its own),
    as ``app.make_web_app()`` would; 405 with ``Allow`` for another method on those paths, 404
    for any other path.

    For aiohttp's low-level server (``web.Server``); the app's lifecycle is the caller's.
    """
    receiver = app.receiver
    webhook = receiver.webhook if app.role != "worker" else None
    healthz = receiver.healthz
    # Several numbers: an on-premises number's callbacks come to ``/webhook/<name>``.
    numbered = app.numbers is not None
    others = {READY_PATH: app.readiness.handle}
    if not app.metrics.on_own_port:
        others[METRICS_PATH] = app.metrics.handle

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        method = request.method
        number = None
        if webhook is not None and (
            path == WEBHOOK_PATH
            or (numbered and (number := number_in_path(WEBHOOK_PATH, path)) is not None)
        ):
            if method != hdrs.METH_POST:
                raise web.HTTPMethodNotAllowed(method, [hdrs.METH_POST])
            if request.headers.get(hdrs.EXPECT):
                refusal = await receiver.expect_continue(request)
                await request.writer.drain()
                if refusal is not None:
                    return refusal
            return await webhook(request, number)
        if path == HEALTH_PATH:
            if method not in (hdrs.METH_GET, hdrs.METH_HEAD):
                raise web.HTTPMethodNotAllowed(method, [hdrs.METH_GET, hdrs.METH_HEAD])
            return await healthz(request)
        other = others.get(path)
        if other is not None:
            return await other(request)
        raise web.HTTPNotFound()

    return handle


def intake_server(app: ServedApp) -> IntakeServer:
    """The low-level server of ``whizrouter run``: :func:`request_handler` behind the intake's
    limits (see ``whizrouter.http_limits``), which it logs once."""
    settings = app.settings
    log.info(
        "intake: request heads up to %d bytes, sent within %g s; idle connections closed "
        "after %g s",
        settings.header_limit,
        settings.head_timeout,
        settings.keepalive_timeout,
    )
    return IntakeServer(
        request_handler(app),
        access_log=None,
        header_limit=settings.header_limit,
        head_timeout=settings.head_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        # One header line may use the whole head: past it, the 431 of the head's limit
        # rather than aiohttp's 400 for a long line.
        max_line_size=max(settings.header_limit, 8190),
        max_field_size=max(settings.header_limit, 8190),
    )


async def serve_forever(app: ServedApp, *, host: str, port: int) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM or SIGINT, then shut down cleanly.

    Shutdown order: the app stops accepting (a request that still arrives gets 503), the
    listening socket and idle kept-alive connections close, requests in progress finish
    (their events are stored), then running handlers get the grace period.
    """
    if not 0 <= port < 65536:
        # uvloop would listen on a random port instead, asyncio raise OverflowError.
        raise WhizrouterError(
            f"port {port} is not a TCP port; choose one from 1 to 65535 (0: any free one)"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gc_threshold = gc_threshold_from_env()  # a bad value fails before anything starts
    runner = web.ServerRunner(intake_server(app), handle_signals=False)
    aiohttp_server_log = logging.getLogger("aiohttp.server")
    # aiohttp logs a first request that is not HTTP at all (a TLS handshake, say) at debug:
    # let its records through to the filter, which passes the rest only at the usual level.
    malformed = MalformedRequestLog(others_from=aiohttp_server_log.getEffectiveLevel())
    own_level = aiohttp_server_log.level
    aiohttp_server_log.setLevel(logging.DEBUG)
    aiohttp_server_log.addFilter(malformed)

    def restore() -> None:
        aiohttp_server_log.removeFilter(malformed)
        aiohttp_server_log.setLevel(own_level)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    # Startup (the inbox, plugins, webhook registration) can wait on the network for long:
    # a signal during it stops it instead of waiting for it to end.
    setup = asyncio.create_task(app.start())
    signalled = asyncio.create_task(stop.wait())
    await asyncio.wait((setup, signalled), return_when=asyncio.FIRST_COMPLETED)
    signalled.cancel()
    if not setup.done():
        log.info("signal received during startup: stopping")
        setup.cancel()
        # Bounded: a startup hook that ignores cancellation must not hold the process.
        await asyncio.wait((setup,), timeout=app.settings.shutdown_grace)
        with contextlib.suppress(BaseException):
            await app.stop()
        restore()
        return
    try:
        setup.result()
    except BaseException:
        restore()
        raise
    try:
        await runner.setup()
        log.info("%s", describe_running_loop())
        log.info("%s", tune_gc(gc_threshold))
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise WhizrouterError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; stop whatever "
                "uses that port, or choose another with --port (and --host for the address)"
            ) from exc
        log.info(
            "listening on %s (%s)",
            ", ".join(_urls(runner.addresses)) or f"http://{host}:{port}",
            "health check only" if app.role == "worker" else "webhook at POST /webhook",
        )
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(app.wait_failed())
        await asyncio.wait((stopped, failed), return_when=asyncio.FIRST_COMPLETED)
        for task in (stopped, failed):
            task.cancel()
        if app.failure is None:
            log.info("signal received: refusing new callbacks and draining")
        app.stop_accepting()
    finally:
        # The listening socket and idle connections close, requests in progress finish
        # (their events are stored), then the app drains its handlers.
        try:
            await runner.cleanup()
        finally:
            await app.stop()
            restore()
    if app.failure is not None:
        raise WhizrouterError(f"event handling stopped: {app.failure}") from app.failure


class MalformedRequestLog(logging.Filter):
    """Turn aiohttp's log of a malformed HTTP request into one short warning every 10 s.

    aiohttp logs each one at ERROR with a traceback and the offending bytes (a header line
    may carry a customer's text or a credential), so anyone on the internet could fill the
    log. The 400 answer itself is aiohttp's and stays as it is.
    """

    def __init__(self, *, others_from: int = logging.NOTSET) -> None:
        super().__init__()
        self.count = 0
        self._throttle = LogThrottle()
        self._others_from = others_from

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return record.levelno >= self._others_from
        self.count += 1
        if not self._throttle.due():
            return False
        what = str(exc.message).strip().splitlines()[0].rstrip(":") if exc.message else ""
        if "HTTPS traffic" in what:  # aiohttp's words for a TLS handshake
            advice = (
                "it looks like a TLS handshake: this port speaks plain HTTP, so let a TLS "
                "proxy in front of it take the provider's https:// calls"
            )
        else:
            advice = "the provider sends well-formed requests, so check what else reaches this port"
        record.msg = "answered %d to a malformed HTTP request from %s (%s; %d so far); " + advice
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.args = (exc.code, remote, what, self.count)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


def _urls(addresses: list[object]) -> list[str]:
    """``http://host:port`` for each socket address the server is bound to."""
    urls = []
    for address in addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = address[0], address[1]
            urls.append(f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}")
    return urls
