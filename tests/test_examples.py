"""Every example runs as written."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable
from typing import Any

from tests.conftest import fixture_bytes
from tests.process import ROOT
from whizrouter import WhizRouter
from whizrouter.testing import FakeProvider, text_callback


async def test_feed_from_queue_example_runs_as_a_script() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "examples/feed_from_queue.py",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == ["15551230001: hello", "15551230001: bye"]


async def test_embedded_example_serves_both_the_site_and_the_bot(
    aiohttp_client: Callable[..., Any], provider: FakeProvider, monkeypatch: Any
) -> None:
    monkeypatch.setenv("WHIZARD_API_KEY", provider.api_key)
    monkeypatch.setenv("WHIZARD_BASE_URL", provider.base_url)
    sys.modules.pop("examples.embedded_aiohttp", None)
    module = importlib.import_module("examples.embedded_aiohttp")
    client = await aiohttp_client(module.create_app())
    assert await (await client.get("/")).text() == "the shop's own site"
    response = await client.post("/whatsapp/webhook", json=text_callback("quiet please"))
    assert response.status == 200
    [call] = await provider.wait_for(1)
    assert call.json is not None and call.json["text"]["body"] == "QUIET PLEASE"
    assert (await client.get("/whatsapp/healthz")).status == 200


async def test_echo_bot_example_echoes_and_marks_read(
    aiohttp_client: Callable[..., Any], provider: FakeProvider, monkeypatch: Any, tmp_path: Any
) -> None:
    monkeypatch.setenv("WHIZARD_API_KEY", provider.api_key)
    monkeypatch.setenv("WHIZARD_BASE_URL", provider.base_url)
    monkeypatch.chdir(tmp_path)  # the default sqlite inbox file lands here
    sys.modules.pop("examples.echo_bot", None)
    app: WhizRouter = importlib.import_module("examples.echo_bot").app
    client = await aiohttp_client(app.make_web_app())
    response = await client.post("/webhook", data=fixture_bytes("onprem/text.json"))
    assert response.status == 200
    await provider.wait_for(lambda c: c.method == "PUT")
    [sent] = provider.sent
    assert sent.json is not None
    assert sent.json["text"]["body"] == "echo: Hi! Is the shop open today?"
    assert sent.json["to"] == "15551230001"
    assert provider.marked_read == ["wamid.GAtvcC10ZXh0LTAwMDEAAAAAAAAAAAAAAAAAAAAA"]
    assert (tmp_path / "whizrouter-inbox.db").exists()
