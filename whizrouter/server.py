"""The standalone process: serve the app, and drain on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from aiohttp import web

from whizrouter.errors import WhizrouterError
from whizrouter.runtime import describe_running_loop, gc_threshold_from_env, tune_gc

if TYPE_CHECKING:
    from whizrouter.app import WhizRouter

log = logging.getLogger("whizrouter.server")


async def serve_forever(app: WhizRouter, *, host: str, port: int) -> None:
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
    runner = web.AppRunner(app.make_web_app(), handle_signals=False, access_log=None)
    await runner.setup()
    try:
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
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if app.failure is not None:
        raise WhizrouterError(f"event handling stopped: {app.failure}") from app.failure


def _urls(addresses: list[object]) -> list[str]:
    """``http://host:port`` for each socket address the server is bound to."""
    urls = []
    for address in addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = address[0], address[1]
            urls.append(f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}")
    return urls
