"""The benchmarked servers, each run as its own process by the runner.

::

    python -m benchmarks.servers baseline|handwritten|typed|durable|memory|sqlite|sqlite-aged
        [--db PATH] [--no-status-handler] [--python-gc] [--asyncio-loop]

The process listens on a free loopback port, writes ``{"port": N}`` as its first line on
stdout, and serves until SIGTERM or SIGINT, or until its stdin reaches end of file (the
runner keeps it open, so a server never outlives a runner that was killed). Every server
answers ``POST /webhook`` with the same ``{"ok":true}`` body, and ``GET /bench/stats`` with
its counters:

- ``ok``: callbacks answered 200;
- ``handled``: events a handler ran for (None for the baseline, which has no handler);
- ``dispatcher_handled``: whizrouter's own counter, which must agree with ``handled``;
- ``handles``: the kinds of event its handlers take (``message``, ``status``), None for the
  baseline, so the runner knows how many handler runs each callback owes;
- ``pending``: events stored and not yet settled (tasks not yet finished, for the hand-written
  server), so the runner knows when it may compare ``handled`` with ``ok``;
- ``cpu_s``: CPU seconds the process used so far (all threads), so the runner can tell what
  a callback costs even when other programs compete for the core;
- ``loop``: the event loop serving it, ``asyncio`` or ``uvloop``.

The servers:

- ``baseline``: bare aiohttp: read the body, ``json.loads`` it, answer 200.
- ``handwritten``: the usual hand-rolled bot: ``orjson.loads``, then ``asyncio.create_task`` of
  a trivial handler that walks the callback's messages and statuses, then 200.
- ``typed``: the hand-rolled bot whose handler takes typed events: as ``handwritten``, but its
  task builds every event's pydantic model (whizrouter's own classes, by the quickest path
  whizrouter has: split, then validated straight from each event's JSON) and awaits a
  trivial handler with each. It stores nothing and keeps no order: what typing the events
  alone costs, the least any server that hands its handlers pydantic events can do.
- ``durable``: the hand-made durable writer (``benchmarks.durable_server``): a plain aiohttp
  app that commits each callback to a WAL sqlite file in group commits before it answers 200,
  then handles it from memory and deletes its row: the simplest correct durable server.
- ``memory``, ``sqlite``: whizrouter with that inbox and a no-op message and status handler
  (no status handler with ``--no-status-handler``, as a bot that only answers messages), as
  the README's first bot has. The sqlite inbox is the one ``whizrouter run`` builds from a
  ``sqlite:///`` URL with no options, in a fresh file (``--db``): what every user gets.
- ``sqlite-aged``: a tuned variant, not what users get: the sqlite file is made to look like
  a long-running bot's (its dedupe index already holds 200,000 keys) and new keys are merged
  into it every 5,000 instead of every 50,000, so every window pays for lookups in a full
  index and for merges. All three run as ``whizrouter run`` runs a bot: on uvloop
  when it is installed (``--asyncio-loop`` keeps asyncio's own loop) and with the garbage
  collector tuned after startup (``--python-gc`` keeps Python's defaults). They are served as
  ``whizrouter run`` serves a bot (its hand-routed handler on aiohttp's low-level server,
  ``whizrouter.server.request_handler``); ``ok`` is the bot's count of 200s.

The baseline and the hand-written server run on asyncio's own loop with Python's collector
settings, as their authors would write them. Access logs are off everywhere, as in
``whizrouter run``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from benchmarks.durable_server import count_events, durable_app
from whizrouter import Context, Message, Status, WhizRouter
from whizrouter.http_limits import IntakeServer
from whizrouter.inbox.base import Inbox
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.payloads import split_callback
from whizrouter.runtime import (
    DEFAULT_GC_THRESHOLD,
    LoopChoice,
    run_with_loop,
    running_loop_name,
    tune_gc,
)
from whizrouter.server import request_handler
from whizrouter.stored_body import decode_message, decode_status

KINDS = ("baseline", "handwritten", "typed", "durable", "memory", "sqlite", "sqlite-aged")
#: The kinds served by whizrouter (the others are aiohttp apps on asyncio's own loop).
WHIZROUTER_KINDS = ("memory", "sqlite", "sqlite-aged")
#: The kinds that need a database file (``--db``).
FILE_KINDS = ("durable", "sqlite", "sqlite-aged")
_OK = b'{"ok":true}'
_JSON = "application/json"


@dataclass
class Counters:
    """What ``GET /bench/stats`` reports (see the module docstring)."""

    ok: int = 0
    handled: int | None = None
    handles: tuple[str, ...] | None = None
    dispatcher_handled: int | None = None
    pending: int = 0

    def as_json(self) -> bytes:
        """The counters as a JSON object."""
        return orjson.dumps(
            {
                "ok": self.ok,
                "handled": self.handled,
                "handles": self.handles,
                "dispatcher_handled": self.dispatcher_handled,
                "pending": self.pending,
                "cpu_s": time.process_time(),
                "loop": running_loop_name(),
            }
        )


def baseline_app() -> web.Application:
    """Bare aiohttp: read the body, parse it with the standard library, answer 200."""
    counters = Counters()

    async def webhook(request: web.Request) -> web.Response:
        json.loads(await request.read())
        counters.ok += 1
        return web.Response(body=_OK, content_type=_JSON)

    async def stats(request: web.Request) -> web.Response:
        return web.Response(body=counters.as_json(), content_type=_JSON)

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/bench/stats", stats)
    return app


def _task_per_callback_app(
    handle: Callable[[dict[str, Any]], Coroutine[Any, Any, None]], counters: Counters
) -> web.Application:
    """The hand-rolled pattern: ``orjson.loads``, ``asyncio.create_task(handle(payload))``,
    answer 200."""
    # Keep references: the event loop holds tasks weakly, so an unreferenced one may vanish.
    running: set[asyncio.Task[None]] = set()

    async def webhook(request: web.Request) -> web.Response:
        payload = orjson.loads(await request.read())
        task = asyncio.create_task(handle(payload))
        running.add(task)
        task.add_done_callback(running.discard)
        counters.ok += 1
        return web.Response(body=_OK, content_type=_JSON)

    async def stats(request: web.Request) -> web.Response:
        counters.pending = len(running)
        return web.Response(body=counters.as_json(), content_type=_JSON)

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/bench/stats", stats)
    return app


def handwritten_app() -> web.Application:
    """The hand-rolled bot: its task only counts the callback's messages and statuses."""
    counters = Counters(handled=0, handles=("message", "status"))

    async def handle(payload: dict[str, Any]) -> None:
        counters.handled = (counters.handled or 0) + count_events(payload)

    return _task_per_callback_app(handle, counters)


def typed_events(counters: Counters) -> Callable[[dict[str, Any]], Coroutine[Any, Any, None]]:
    """The typed servers' task: build each event's model, await a trivial handler with it."""

    async def on_event(event: Message | Status) -> None:
        counters.handled = (counters.handled or 0) + 1

    async def handle(payload: dict[str, Any]) -> None:
        for raw in split_callback(payload):
            if raw.kind == "message":
                await on_event(decode_message(raw.body))
            elif raw.kind == "status":
                await on_event(decode_status(raw.body))

    return handle


def typed_app() -> web.Application:
    """The hand-rolled bot with typed events: its task builds each event's model and awaits
    a trivial handler with it."""
    counters = Counters(handled=0, handles=("message", "status"))
    return _task_per_callback_app(typed_events(counters), counters)


def new_bot(inbox: str | Inbox, **settings: Any) -> WhizRouter:
    """A ``WhizRouter`` on ``inbox`` configured like a production bot.

    It has a provider key and URL (never called: the handlers send nothing), so startup does
    not warn about them; every other setting is the default unless given in ``settings``.
    """
    return WhizRouter(
        inbox=inbox, api_key="benchmark-key", base_url="http://127.0.0.1:9", **settings
    )


OLDER_KEYS = 200_000
RECENT_KEYS = 5_000


def aged_sqlite_inbox(db: str, older_keys: int = OLDER_KEYS) -> SqliteInbox:
    """A sqlite inbox in a new file whose dedupe index already holds ``older_keys`` keys."""
    inbox = SqliteInbox(db, recent_keys=RECENT_KEYS)

    async def create() -> None:
        await inbox.open()
        await inbox.close()

    asyncio.run(create())
    with contextlib.closing(sqlite3.connect(db)) as conn:
        at = time.time() - 3600
        # Random provider-like ids, generated, sorted and stored inside sqlite: a fraction of
        # a second for 200,000.
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO seen(key, at) SELECT 'm:wamid.HBgM' || lower(hex(randomblob(12))) AS key, "
            "? FROM n ORDER BY key",
            (older_keys, at),
        )
        conn.commit()
    return inbox


def whizrouter_server(
    inbox: str | Inbox, *, status_handler: bool = True
) -> tuple[web.Server, WhizRouter]:
    """whizrouter with the given inbox URL and a no-op handler for messages and (unless
    ``status_handler`` is false) statuses, served as ``whizrouter run`` serves it
    (``whizrouter.server.request_handler`` on aiohttp's low-level server), plus
    ``GET /bench/stats``.

    The caller starts and stops the bot around serving it, as ``whizrouter run`` does.
    """
    bot = new_bot(inbox)
    counters = Counters(
        handled=0, handles=("message", "status") if status_handler else ("message",)
    )

    @bot.on_message()
    async def on_message(message: Message, ctx: Context) -> None:
        counters.handled = (counters.handled or 0) + 1

    if status_handler:

        @bot.on_status()
        async def on_status(status: Status, ctx: Context) -> None:
            counters.handled = (counters.handled or 0) + 1

    async def stats(request: web.BaseRequest) -> web.Response:
        dispatcher = bot.dispatcher
        counters.ok = bot.receiver.acknowledged
        counters.dispatcher_handled = dispatcher.handled if dispatcher else None
        counters.pending = bot.inbox.backlog() if bot.started else 0
        return web.Response(body=counters.as_json(), content_type=_JSON)

    handle = request_handler(bot)

    def route(request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
        # Not a coroutine: the stats route costs each callback one call and one comparison.
        return stats(request) if request.path == "/bench/stats" else handle(request)

    settings = bot.settings
    # Behind the intake's limits, as ``whizrouter run`` serves it (``intake_server``).
    server = IntakeServer(
        route,
        access_log=None,
        header_limit=settings.header_limit,
        head_timeout=settings.head_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        max_line_size=max(settings.header_limit, 8190),
        max_field_size=max(settings.header_limit, 8190),
    )
    return server, bot


@dataclass
class BenchServer:
    """What a benchmarked server serves: an aiohttp app, or whizrouter's own low-level
    server and the bot it serves (started before the port opens, stopped after it closes)."""

    runner: web.BaseRunner
    bot: WhizRouter | None = None


def bench_inbox(kind: str, db: str | None = None) -> str | Inbox | None:
    """The inbox of a whizrouter kind (None for the others); made before the event loop runs,
    since the aged sqlite file is written with an event loop of its own.

    Raises:
        ValueError: a sqlite kind comes without a database path.
    """
    if kind == "memory":
        return "memory"
    if kind in FILE_KINDS and not db:
        raise ValueError(f"the {kind} server needs --db PATH (a fresh file)")
    if kind == "sqlite":
        # The URL a user writes, with no options: the inbox `whizrouter run` builds from it.
        return f"sqlite:///{Path(db or '').absolute()}"
    if kind == "sqlite-aged":
        return aged_sqlite_inbox(db or "")
    return None


def build_server(
    kind: str,
    inbox: str | Inbox | None = None,
    *,
    status_handler: bool = True,
    db: str | None = None,
) -> BenchServer:
    """The server of one benchmarked kind; ``inbox`` from ``bench_inbox`` for whizrouter's,
    whose bot has no status handler when ``status_handler`` is false. Call it with the serving
    event loop running.

    Raises:
        ValueError: ``kind`` is unknown, or a whizrouter kind comes without an inbox.
    """
    if kind == "baseline":
        return BenchServer(web.AppRunner(baseline_app(), handle_signals=False, access_log=None))
    if kind == "handwritten":
        return BenchServer(web.AppRunner(handwritten_app(), handle_signals=False, access_log=None))
    if kind == "typed":
        return BenchServer(web.AppRunner(typed_app(), handle_signals=False, access_log=None))
    if kind == "durable":
        if not db:
            raise ValueError("the durable server needs --db PATH (a fresh file)")
        counters = Counters(handled=0, handles=("message", "status"))
        app = durable_app(Path(db), counters)
        return BenchServer(web.AppRunner(app, handle_signals=False, access_log=None))
    if kind not in KINDS:
        raise ValueError(f"unknown server {kind!r}; choose one of {', '.join(KINDS)}")
    if inbox is None:
        raise ValueError(f"the {kind} server needs its inbox (see bench_inbox)")
    server, bot = whizrouter_server(inbox, status_handler=status_handler)
    return BenchServer(web.ServerRunner(server, handle_signals=False), bot)


async def serve(server: BenchServer, *, gc_threshold: int = 0) -> None:
    """Serve ``server`` on a free loopback port, announce the port, stop when told to.

    SIGTERM, SIGINT or the end of stdin stop the server. A ``gc_threshold`` above 0 tunes
    the garbage collector after startup, as ``whizrouter run`` does (see
    ``whizrouter.runtime``).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        if not os.read(stdin, 4096):
            loop.remove_reader(stdin)
            stop.set()

    with contextlib.suppress(OSError):  # stdin is a file or /dev/null: nothing to watch
        loop.add_reader(stdin, on_stdin)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    runner, bot = server.runner, server.bot
    if bot is not None:
        await bot.start()
    await runner.setup()
    if gc_threshold:
        tune_gc(gc_threshold)
    try:
        await web.SockSite(runner, sock).start()
        port = sock.getsockname()[1]
        sys.stdout.write(json.dumps({"port": port}) + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()
        if bot is not None:
            await bot.stop()


async def _build_and_serve(
    kind: str,
    inbox: str | Inbox | None,
    gc_threshold: int,
    status_handler: bool,
    db: str | None = None,
) -> None:
    server = build_server(kind, inbox, status_handler=status_handler, db=db)
    await serve(server, gc_threshold=gc_threshold)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one benchmarked server until it is signalled; returns the exit code.

    Args:
        argv: ``KIND [--db PATH]``.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument(
        "--db", help="the sqlite file (durable and sqlite kinds only; must be fresh)"
    )
    parser.add_argument(
        "--python-gc",
        action="store_true",
        help="keep Python's collector settings for a whizrouter server too (by default it is "
        "tuned as `whizrouter run` tunes it; the baseline and the hand-written server never are)",
    )
    parser.add_argument(
        "--asyncio-loop",
        action="store_true",
        help="run a whizrouter server on asyncio's own event loop (by default it runs on "
        "uvloop when installed, as `whizrouter run` does; the other servers never do)",
    )
    parser.add_argument(
        "--no-status-handler",
        action="store_true",
        help="a whizrouter server's bot registers no status handler, so it does not store "
        "statuses at all (answers them 200); the other servers ignore this",
    )
    args = parser.parse_args(argv)
    whizrouter_kind = args.kind in WHIZROUTER_KINDS
    threshold = DEFAULT_GC_THRESHOLD if whizrouter_kind and not args.python_gc else 0
    inbox = bench_inbox(args.kind, args.db)
    if whizrouter_kind:
        loop: LoopChoice = "asyncio" if args.asyncio_loop else "auto"
        # Built on the loop that serves it: a bot's app makes its asyncio objects there.
        serving = _build_and_serve(args.kind, inbox, threshold, not args.no_status_handler)
        run_with_loop(serving, loop)
    else:
        asyncio.run(_build_and_serve(args.kind, inbox, threshold, True, args.db))
    return 0


if __name__ == "__main__":
    sys.exit(main())
