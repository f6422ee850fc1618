"""The hand-made durable writer: the simplest correct durable webhook server, for comparison.

A plain aiohttp app, as its author would write it (asyncio's own loop, Python's collector
settings), whose ``POST /webhook``:

1. reads the body and ``orjson.loads`` it;
2. hands the body to one writer thread, which stores every callback queued meanwhile as one
   row each in a WAL sqlite file (``synchronous=NORMAL``, as whizrouter's default) and commits
   them together (group commit);
3. answers 200 only once that commit is done (a 200 means stored);
4. then starts a task whose handler walks the callback's messages and statuses (counting them,
   as the hand-written server does), and after it queues the row's delete, which the writer
   runs with its next group.

No dedupe, no order per conversation, no retries, no typed events: the least a server that
answers 200 only for what is on disk must do. ``benchmarks.servers`` serves it as ``durable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

_OK = b'{"ok":true}'
_JSON = "application/json"

#: An insert (the body and the future its commit resolves) or a delete (a row id).
_Item = tuple[bytes, "asyncio.Future[int]"] | int | None


class DurableWriter:
    """One thread, one connection: stores bodies and deletes rows in group commits."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="durable-writer", daemon=True)
        self._thread.start()

    def store(self, body: bytes) -> asyncio.Future[int]:
        """Queue ``body``; the future gives its row id once committed."""
        future: asyncio.Future[int] = self._loop.create_future()
        self._queue.put((body, future))
        return future

    def delete(self, row: int) -> None:
        """Queue the delete of a handled row (committed with the next group)."""
        self._queue.put(row)

    def stop(self) -> None:
        """Run what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body BLOB)")
        done = False
        while not done:
            items = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(items) < 1024:
                    items.append(self._queue.get_nowait())
            stored: list[tuple[asyncio.Future[int], int]] = []
            deletes: list[tuple[int]] = []
            conn.execute("BEGIN")
            for item in items:
                if item is None:
                    done = True
                elif isinstance(item, int):
                    deletes.append((item,))
                else:
                    body, future = item
                    row = conn.execute("INSERT INTO events(body) VALUES (?)", (body,)).lastrowid
                    stored.append((future, row or 0))
            if deletes:
                conn.executemany("DELETE FROM events WHERE id = ?", deletes)
            conn.execute("COMMIT")
            if stored:
                self._loop.call_soon_threadsafe(_resolve, stored)
        conn.close()


def _resolve(stored: list[tuple[asyncio.Future[int], int]]) -> None:
    for future, row in stored:
        if not future.done():
            future.set_result(row)


def count_events(payload: dict[str, Any]) -> int:
    """How many messages and statuses a callback body carries, in either API shape."""
    values = [payload]
    entries = payload.get("entry")
    if isinstance(entries, list):
        values = [
            change.get("value") or {} for entry in entries for change in entry.get("changes", ())
        ]
    return sum(len(v.get("messages", ())) + len(v.get("statuses", ())) for v in values)


def durable_app(path: Path, counters: Any) -> web.Application:
    """The app; ``counters`` is ``benchmarks.servers.Counters`` (handled, pending, ok)."""
    running: set[asyncio.Task[None]] = set()
    writers: list[DurableWriter] = []

    async def handle(payload: dict[str, Any], row: int) -> None:
        counters.handled += count_events(payload)
        writers[0].delete(row)

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        payload = orjson.loads(body)
        row = await writers[0].store(body)
        task = asyncio.create_task(handle(payload, row))
        running.add(task)
        task.add_done_callback(running.discard)
        counters.ok += 1
        return web.Response(body=_OK, content_type=_JSON)

    async def stats(request: web.Request) -> web.Response:
        counters.pending = len(running)
        return web.Response(body=counters.as_json(), content_type=_JSON)

    async def writer_context(app: web.Application) -> Any:
        writers.append(DurableWriter(path))
        yield
        await asyncio.to_thread(writers[0].stop)

    app = web.Application()
    app.cleanup_ctx.append(writer_context)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/bench/stats", stats)
    return app
