"""``GET /readyz``: 503 with the reason before the inbox opens, while draining, with a full
backlog and with a full disk; 200 only while callbacks are taken. ``/healthz`` stays liveness."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import RawTestServer

from tests.conftest import AiohttpClient
from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.server import request_handler
from whizrouter.testing import text_callback

MakeApp = Callable[..., WhizRouter]
Serve = Callable[[WhizRouter], Awaitable[Any]]


async def readiness(client: Any) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    return response.status, await response.json()


async def test_not_ready_before_the_inbox_opens_nor_while_draining(
    make_app: MakeApp, aiohttp_client: AiohttpClient
) -> None:
    app = make_app()
    client = await aiohttp_client(RawTestServer(request_handler(app)))  # type: ignore[arg-type]
    status, body = await readiness(client)
    assert status == 503 and body["ready"] is False and "not started" in body["reason"]
    await app.start()
    try:
        assert await readiness(client) == (200, {"ready": True})
        app.stop_accepting()  # the first step of a SIGTERM
        status, body = await readiness(client)
        assert status == 503 and body["reason"].startswith("draining")
        assert (await client.get("/healthz")).status == 503
    finally:
        await app.stop()
    status, body = await readiness(client)
    assert status == 503 and "not started" in body["reason"]
    assert (await client.post("/readyz")).status == 405


async def test_not_ready_with_a_full_backlog(make_app: MakeApp, serve_both: Serve) -> None:
    app = make_app(max_backlog=2)
    release = asyncio.Event()

    @app.on_message()
    async def wait(message: TextMessage, ctx: Context) -> None:
        await release.wait()

    client = await serve_both(app)
    for n in range(2):
        callback = text_callback("hi", wa_id=f"3160000000{n}", message_id=f"wamid.{n}")
        assert (await client.post("/webhook", json=callback)).status == 200
    status, body = await readiness(client)
    assert status == 503 and "backlog is full (2 unsettled events, bound 2)" in body["reason"]
    assert (await client.get("/healthz")).status == 200  # alive all the same
    release.set()
    await app.dispatcher.wait_idle()  # type: ignore[union-attr]
    assert (await readiness(client))[0] == 200


async def test_not_ready_with_a_full_disk_and_ready_again_once_a_callback_is_stored(
    make_app: MakeApp, serve_both: Serve, tmp_path: Path
) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.db")
    app = make_app(inbox=inbox)

    @app.on_message()
    async def nothing(message: TextMessage, ctx: Context) -> None:
        pass

    client = await serve_both(app)
    assert (await client.post("/webhook", json=text_callback("small"))).status == 200

    def limit(pages: int | None) -> Callable[[sqlite3.Connection], object]:
        # SQLite's max_page_count makes the file as good as a full disk.
        def run(conn: sqlite3.Connection) -> object:
            now = conn.execute("PRAGMA page_count").fetchone()[0]
            return conn.execute(f"PRAGMA max_page_count={pages or now}").fetchone()

        return run

    await inbox._submit(limit(None))
    big = text_callback("x" * 60_000, message_id="wamid.big")
    assert (await client.post("/webhook", json=big)).status == 503
    status, body = await readiness(client)
    assert status == 503 and "could not store the last callback" in body["reason"]
    assert "disk is full" in body["reason"]
    assert (await client.get("/healthz")).status == 200  # liveness: a restart would not help
    await inbox._submit(limit(1_000_000))
    assert (await client.post("/webhook", json=big)).status == 200
    assert (await readiness(client))[0] == 200
