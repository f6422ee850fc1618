"""The benchmarked ASGI servers, each run under uvicorn as its own process.

::

    python -m benchmarks.asgi_servers asgi-baseline|asgi-typed|asgi

They follow the protocol of ``benchmarks.servers`` (the port on the first line of stdout,
``GET /bench/stats``, stop on SIGTERM or the end of stdin), both served by uvicorn with the
same loop (uvloop when installed) and HTTP parser (httptools when installed), access log off:

- ``asgi-baseline``: a bare ASGI app: read the body, ``json.loads`` it, answer 200.
- ``asgi-typed``: the typed floor on uvicorn: as ``asgi-baseline``, but ``orjson.loads``, then
  a task per callback that builds every event's pydantic model and awaits a trivial handler
  with each (``benchmarks.servers.typed_events``, as the aiohttp ``typed`` server). It stores
  nothing and keeps no order: the least any ASGI app that hands its handlers typed events
  can cost.
- ``asgi``: ``whizrouter.asgi.asgi_app`` of a bot on the memory inbox with a no-op message
  and status handler, started and stopped by uvicorn's lifespan.

The paired part loads the ``asgi`` server beside ``asgi-baseline`` on the same core, so its
figure is what the ASGI adapter, the inbox and the dispatcher cost on top of uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import Callable, Sequence

import orjson
import uvicorn

from benchmarks.servers import Counters, new_bot, typed_events
from whizrouter import Context, Message, Status
from whizrouter.asgi import ASGIApp, Receive, Scope, Send, asgi_app
from whizrouter.runtime import DEFAULT_GC_THRESHOLD, run_with_loop, tune_gc

KINDS = ("asgi-baseline", "asgi-typed", "asgi")
_OK = b'{"ok":true}'
_HEADERS = [(b"content-type", b"application/json")]


async def _answer(send: Send, body: bytes) -> None:
    headers = [*_HEADERS, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def baseline_asgi() -> ASGIApp:
    """Bare ASGI: read the body, parse it with the standard library, answer 200."""
    counters = Counters()

    def handle(body: bytes) -> None:
        json.loads(body)

    return _reading_asgi(counters, handle)


def typed_asgi() -> ASGIApp:
    """The typed floor: read the body, ``orjson.loads`` it, start a task that builds its typed
    events and hands each to a trivial handler, answer 200."""
    counters = Counters(handled=0, handles=("message", "status"))
    handle_events = typed_events(counters)
    # Keep references: the event loop holds tasks weakly, so an unreferenced one may vanish.
    running: set[asyncio.Task[None]] = set()

    def handle(body: bytes) -> None:
        task = asyncio.create_task(handle_events(orjson.loads(body)))
        running.add(task)
        task.add_done_callback(running.discard)

    return _reading_asgi(counters, handle)


def _reading_asgi(counters: Counters, handle: Callable[[bytes], None]) -> ASGIApp:
    """A bare ASGI app that reads each body whole, gives it to ``handle`` and answers 200."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/bench/stats":
            await _answer(send, counters.as_json())
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        handle(b"".join(chunks))
        counters.ok += 1
        await _answer(send, _OK)

    return app


def whizrouter_asgi() -> ASGIApp:
    """whizrouter's ASGI app on the memory inbox, no-op handlers, plus ``/bench/stats``."""
    bot = new_bot("memory")
    counters = Counters(handled=0, handles=("message", "status"))

    @bot.on_message()
    async def on_message(message: Message, ctx: Context) -> None:
        counters.handled = (counters.handled or 0) + 1

    @bot.on_status()
    async def on_status(status: Status, ctx: Context) -> None:
        counters.handled = (counters.handled or 0) + 1

    webhook = asgi_app(bot)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/stats":
            dispatcher = bot.dispatcher
            counters.ok = bot.receiver.acknowledged
            counters.dispatcher_handled = dispatcher.handled if dispatcher else None
            counters.pending = bot.inbox.backlog() if bot.started else 0
            await _answer(send, counters.as_json())
            return
        await webhook(scope, receive, send)

    return app


async def _serve(kind: str, gc_threshold: int) -> None:
    # Built on the loop that serves it: a bot's app makes its asyncio objects there.
    app = {"asgi": whizrouter_asgi, "asgi-typed": typed_asgi}.get(kind, baseline_asgi)()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="on", access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
            return
        await asyncio.sleep(0.01)
    if gc_threshold:
        tune_gc(gc_threshold)
    sys.stdout.write(json.dumps({"port": sock.getsockname()[1]}) + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        if not os.read(stdin, 4096):
            loop.remove_reader(stdin)
            server.should_exit = True

    with contextlib.suppress(OSError):  # stdin is a file or /dev/null: nothing to watch
        loop.add_reader(stdin, on_stdin)
    await serving  # uvicorn stops on SIGTERM or SIGINT


def main(argv: Sequence[str] | None = None) -> int:
    """Run one benchmarked ASGI server until it is signalled; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.asgi_servers")
    parser.add_argument("kind", choices=KINDS)
    # The options of benchmarks.servers: the whizrouter one's collector and both servers' loop.
    parser.add_argument("--python-gc", action="store_true")
    parser.add_argument("--asyncio-loop", action="store_true")
    parser.add_argument("--no-status-handler", action="store_true")
    args = parser.parse_args(argv)
    threshold = DEFAULT_GC_THRESHOLD if args.kind == "asgi" and not args.python_gc else 0
    # Both on the loop uvicorn picks by default: uvloop when installed.
    run_with_loop(_serve(args.kind, threshold), "asyncio" if args.asyncio_loop else "auto")
    return 0


if __name__ == "__main__":
    sys.exit(main())
