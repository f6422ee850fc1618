"""The intake of ``whizrouter run``: the request head is capped (431, then the connection
closes), must arrive within its deadline, and idle connections close after the keep-alive
timeout while real callbacks are still answered. Served as ``whizrouter run`` serves, with
the limits shortened through the environment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Recorder
from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.server import intake_server
from whizrouter.testing import free_port, text_callback

HEAD_TIMEOUT = 0.5
KEEPALIVE = 1.0
#: Idle connections held open at once (each costs this process two file descriptors).
IDLE_CONNECTIONS = 1000


@pytest.fixture
async def bot(
    make_app: Callable[..., WhizRouter], recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[int]:
    monkeypatch.setenv("WHIZROUTER_HEAD_TIMEOUT", str(HEAD_TIMEOUT))
    monkeypatch.setenv("WHIZROUTER_KEEPALIVE_TIMEOUT", str(KEEPALIVE))
    app = make_app()

    @app.on_message()
    async def echo(message: TextMessage, ctx: Context) -> None:
        await recorder.add(message)

    await app.start()
    runner = web.ServerRunner(intake_server(app), handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()
        await app.stop()


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and read everything until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()


def head(headers: int, size: int, *, end: bool = True) -> bytes:
    lines = "".join(f"X-Filler-{n}: {'a' * size}\r\n" for n in range(headers))
    return f"POST /webhook HTTP/1.1\r\nHost: bot\r\n{lines}".encode() + (b"\r\n" if end else b"")


async def test_100_headers_of_1_kb_get_431_and_the_connection_closes(bot: int) -> None:
    port = bot
    answer = await exchange(port, head(100, 1024))
    assert answer.split(b" ", 2)[1] == b"431"
    assert b"request head larger than 16384 bytes" in answer
    # Not yet complete, but already too large: refused the same way.
    assert (await exchange(port, head(30, 1024, end=False))).split(b" ", 2)[1] == b"431"
    # A usual request on a new connection is answered as ever.
    async with aiohttp.ClientSession() as session:
        callback = text_callback("hi")
        async with session.post(f"http://127.0.0.1:{port}/webhook", json=callback) as response:
            assert response.status == 200


async def test_a_head_under_the_limit_with_its_body_in_the_same_read_is_taken(
    bot: int, recorder: Recorder
) -> None:
    port = bot
    body = b'{"messages":[]}' + b" " * 40_000  # one read carries head and a large body
    request = (
        head(10, 1000, end=False)
        + (
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
    )
    assert (await exchange(port, request + body)).startswith(b"HTTP/1.1 200 ")


async def test_a_client_dribbling_its_head_is_disconnected_after_the_deadline(
    bot: int, caplog: pytest.LogCaptureFixture
) -> None:
    port = bot
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    closed_after = None
    try:
        for byte in head(3, 10):
            writer.write(bytes([byte]))
            try:
                await writer.drain()
                got = await asyncio.wait_for(reader.read(1), timeout=0.05)
            except (TimeoutError, ConnectionError):
                continue
            if got == b"":  # the server closed the connection
                closed_after = time.monotonic() - began
                break
    finally:
        writer.close()
    assert closed_after is not None, "the slow client was never disconnected"
    assert HEAD_TIMEOUT <= closed_after < HEAD_TIMEOUT + 1.0
    assert "sent no complete request head within 0.5 s" in caplog.text


async def test_idle_connections_close_after_the_keepalive_timeout_while_callbacks_flow(
    bot: int, recorder: Recorder
) -> None:
    port = bot
    # Half have sent one request and wait kept alive (closed by the keep-alive timeout);
    # half connected and sent nothing (closed by the head's deadline).
    healthz = b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n"
    began = time.monotonic()
    connections = []
    for n in range(IDLE_CONNECTIONS):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if n % 2 == 0:
            writer.write(healthz)
        connections.append((reader, writer))
    for reader, _ in connections[::2]:
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).startswith(
            b"HTTP/1.1 200"
        )

    async def closed(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    waiting = asyncio.gather(*(closed(reader) for reader, _ in connections))
    async with aiohttp.ClientSession() as session:
        for n in range(20):  # callbacks still answered meanwhile
            callback = text_callback(f"hi {n}", message_id=f"wamid.{n}")
            async with session.post(f"http://127.0.0.1:{port}/webhook", json=callback) as r:
                assert r.status == 200
    await asyncio.wait_for(waiting, timeout=KEEPALIVE + 5)
    assert time.monotonic() - began < KEEPALIVE + 5
    await recorder.wait_for(20)
    for _, writer in connections:
        writer.close()
