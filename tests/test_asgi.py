"""The ASGI application: under a real uvicorn process, and mounted in FastAPI.

Every answer of the webhook is also checked against the ASGI app in tests/test_receiver.py
(its ``asgi`` runs, uvicorn in the test's loop); here, the checks ``whizrouter run`` passes as
a process, and a host app that serves its own routes beside the bot.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from fastapi import FastAPI

from tests.conftest import Recorder, raw_http
from tests.process import BotProcess
from tests.uvicorn_server import uvicorn_client
from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.asgi import asgi_app, lifespan
from whizrouter.testing import FakeProvider, status_callback, text_callback

AUTH = {"Authorization": "Basic " + base64.b64encode(b"provider:s3cret").decode()}


class UvicornProcess(BotProcess):
    """``python -m uvicorn TARGET`` as a child process on a free port."""

    def command(self) -> list[str]:
        return ["uvicorn", self.target, "--host", "127.0.0.1", "--port", str(self.port)]


def _bodies(provider: FakeProvider) -> list[str]:
    return [call.json["text"]["body"] for call in provider.sent if call.json]


async def _health(session: aiohttp.ClientSession, bot: BotProcess) -> dict[str, Any]:
    async with session.get(bot.url + "/healthz") as response:
        assert response.status == 200
        report: dict[str, Any] = await response.json()
        return report


async def _wait_until_idle(session: aiohttp.ClientSession, bot: BotProcess) -> None:
    # Another process's state: polled, with a deadline.
    async with asyncio.timeout(10):
        while True:
            if not (await _health(session, bot))["backlog"]:
                return
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_the_asgi_app_under_uvicorn_answers_as_whizrouter_run(tmp_path: Path) -> None:
    async with FakeProvider() as provider, aiohttp.ClientSession() as session:
        env: Mapping[str, str] = {
            "WHIZARD_API_KEY": provider.api_key,
            "WHIZARD_BASE_URL": provider.base_url,
            "WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}",
            "WHIZROUTER_WEBHOOK_USER": "provider",
            "WHIZROUTER_WEBHOOK_PASSWORD": "s3cret",
            "WHIZROUTER_BODY_LIMIT": "4096",
            "WHIZROUTER_MAX_BACKLOG": "2",
            "ASGI_BOT_READ_TIMEOUT": "0.5",
            "ASGI_BOT_WORK_SECONDS": "1.0",
        }
        bot = UvicornProcess("tests.bots.asgi_bot:asgi", env)
        await bot.start()
        try:
            webhook = bot.url + "/webhook"
            first = orjson.dumps(text_callback("one", wa_id="15550000001", message_id="wamid.1"))
            # Auth, checked before the body: none, wrong, right.
            async with session.post(webhook, data=first) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Basic")
            # Limits: a body over WHIZROUTER_BODY_LIMIT, one that never ends, bad JSON.
            async with session.post(webhook, data=b" " * 5000, headers=AUTH) as r:
                assert r.status == 413
            slow = await raw_http(
                "127.0.0.1",
                bot.port,
                b"POST /webhook HTTP/1.1\r\nHost: bot\r\nAuthorization: "
                + AUTH["Authorization"].encode()
                + b"\r\nContent-Length: 100\r\n\r\n{",
            )
            assert slow.startswith(b"HTTP/1.1 408"), slow
            async with session.post(webhook, data=b"[1]", headers=AUTH) as r:
                assert r.status == 400
                assert (await r.json())["error"] == "expected a JSON object, got an array"
            # A callback and its redelivery: both acknowledged, handled once.
            for _ in range(2):
                async with session.post(webhook, data=first, headers=AUTH) as r:
                    assert r.status == 200
                    assert await r.json() == {"ok": True}
            await provider.wait_for(lambda c: c.json is not None and "done one" in str(c.json))
            # A status, which no handler of this bot takes: answered 200, not stored.
            status = orjson.dumps(status_callback("wamid.out", "delivered"))
            async with session.post(webhook, data=status, headers=AUTH) as r:
                assert r.status == 200
            await _wait_until_idle(session, bot)
            report = await _health(session, bot)
            assert report["unwanted"] == 1
            assert report["refused"] == {"400": 1, "401": 1, "408": 1, "413": 1}
            # Full: two running handlers fill a backlog of 2, the third callback gets 503.
            for number in (2, 3):
                callback = text_callback(f"job{number}", wa_id=f"1555000000{number}")
                async with session.post(webhook, json=callback, headers=AUTH) as r:
                    assert r.status == 200
            full = text_callback("four", wa_id="15550000004")
            async with session.post(webhook, json=full, headers=AUTH) as r:
                assert r.status == 503
                assert int(r.headers["Retry-After"]) > 0
            await _wait_until_idle(session, bot)
            # Acknowledged means stored: killed at once, the next process handles it.
            last = text_callback("last", wa_id="15550000005")
            async with session.post(webhook, json=last, headers=AUTH) as r:
                assert r.status == 200
            bot.signal(signal.SIGKILL)
            await bot.wait()
            output = await bot.output()
            restarted = UvicornProcess("tests.bots.asgi_bot:asgi", env)
            await restarted.start()
            await provider.wait_for(lambda c: c.json is not None and "started last" in str(c.json))
            # SIGTERM while a handler runs: the lifespan drains it before uvicorn exits (by
            # the signal, which uvicorn raises again once shut down).
            restarted.signal()
            assert await restarted.wait() in (0, -signal.SIGTERM)
        finally:
            bot.kill()
            output = await bot.output() if bot.process and bot.process.stdout else ""
        bodies = _bodies(provider)
        assert bodies.count("done one") == 1, bodies
        assert "done last" in bodies, bodies
        assert "started four" not in bodies
        restarted_output = await restarted.output()
        assert "Application startup complete" in restarted_output, restarted_output
        assert "Application shutdown complete" in restarted_output, restarted_output
        assert "Traceback" not in restarted_output + output


async def test_a_fastapi_app_serves_its_routes_and_the_bot_side_by_side(
    make_app: Any, recorder: Recorder
) -> None:
    bot: WhizRouter = make_app()

    @bot.on_message(type="text")
    async def echo(message: TextMessage, ctx: Context) -> None:
        await recorder.add(message.text.body)

    api = FastAPI(lifespan=lifespan(bot))

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    api.mount("/whatsapp", asgi_app(bot))
    client = await uvicorn_client(api)
    try:
        assert bot.started  # FastAPI's lifespan started it
        assert await (await client.get("/items/7")).json() == {"item_id": 7}
        answer = await client.post("/whatsapp/webhook", json=text_callback("hi"))
        assert answer.status == 200
        assert await recorder.wait_for(1) == ["hi"]
        health = await client.get("/whatsapp/healthz")
        assert health.status == 200
        assert (await health.json())["acknowledged"] == 1
        assert (await client.get("/whatsapp/other")).status == 404
        assert (await client.get("/items/7")).status == 200
    finally:
        await client.close()
    assert not bot.started  # and stopped it


async def test_mounted_without_its_lifespan_it_answers_503_and_says_what_to_wire(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    api = FastAPI()
    api.mount("/whatsapp", asgi_app(make_app()))
    client = await uvicorn_client(api)
    try:
        with caplog.at_level(logging.WARNING, logger="whizrouter.asgi"):
            answer = await client.post("/whatsapp/webhook", json=text_callback("hi"))
        assert answer.status == 503
        assert "Retry-After" in answer.headers
        assert "FastAPI(lifespan=whizrouter.asgi.lifespan(bot))" in caplog.text
    finally:
        await client.close()
