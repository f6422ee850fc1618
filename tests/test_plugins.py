"""Plugin hooks, discovery by name, and the first-party mark-read plugin."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from whizrouter_plugins.mark_read import MarkRead

from tests.conftest import BotClient, Recorder
from whizrouter import ConfigurationError, Context, Message, PluginError, TextMessage, WhizRouter
from whizrouter import plugins as plugins_module
from whizrouter.plugins import installed_plugins
from whizrouter.testing import FakeProvider, text_callback

Serve = Callable[[WhizRouter], Awaitable[BotClient]]
MakeApp = Callable[..., WhizRouter]


def test_mark_read_is_registered_as_an_entry_point() -> None:
    assert installed_plugins()["mark-read"] == "whizrouter_plugins.mark_read:MarkRead"


def test_a_lone_plugin_name_is_refused_with_the_fix(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match=r"write plugins=\['mark-read'\]"):
        make_app(plugins="mark-read")


def test_use_hands_back_the_plugin_with_its_own_type(make_app: MakeApp) -> None:
    class Audit:
        def __init__(self) -> None:
            self.errors: list[str] = []

    audit = make_app().use(Audit())
    assert audit.errors == []  # typed as Audit: mypy --strict checks this file


async def test_unknown_plugin_name_fails_at_startup_listing_installed(make_app: MakeApp) -> None:
    app = make_app(plugins=["mark-raed"])
    with pytest.raises(PluginError, match=r"no plugin named 'mark-raed'.*mark-read"):
        await app.start()


async def test_hooks_run_in_order_and_a_raising_hook_never_stops_the_others(
    make_app: MakeApp, serve: Serve, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    class Broken:
        name = "broken"

        async def before_handle(self, event: Any, ctx: Context) -> None:
            raise RuntimeError("hook bug")

    class Tracing:
        async def startup(self, app: WhizRouter) -> None:
            calls.append("startup")

        async def before_handle(self, event: Any, ctx: Context) -> None:
            calls.append(f"before {ctx.handler.rsplit('.', 1)[-1]}")

        async def after_handle(self, event: Any, ctx: Context) -> None:
            calls.append("after")
            await recorder.add("after")

        async def shutdown(self, app: WhizRouter) -> None:
            calls.append("shutdown")

    app = make_app(plugins=[Broken(), Tracing()])

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        calls.append("handler")

    with caplog.at_level(logging.ERROR, logger="whizrouter"):
        client = await serve(app)
        await client.post("/webhook", json=text_callback("hi"))
        await recorder.wait_for(1)
        await client.close()
    assert calls == ["startup", "before handler", "handler", "after", "shutdown"]
    assert "plugin broken failed in before_handle" in caplog.text


async def test_mark_read_marks_after_the_handler(
    make_app: MakeApp, serve: Serve, provider: FakeProvider
) -> None:
    app = make_app(plugins=["mark-read"])
    order: list[str] = []

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        order.append(f"handled {len(provider.marked_read)} marked")

    client = await serve(app)
    body = text_callback("read me", message_id="wamid.read-me")
    assert (await client.post("/webhook", json=body)).status == 200
    await provider.wait_for(lambda call: call.method == "PUT")
    assert provider.marked_read == ["wamid.read-me"]
    assert order == ["handled 0 marked"]
    [call] = [c for c in provider.calls if c.method == "PUT"]
    assert call.path == "/v1/messages/wamid.read-me"
    assert call.json == {"status": "read"}


async def test_mark_read_before(
    make_app: MakeApp, serve: Serve, provider: FakeProvider, recorder: Recorder
) -> None:
    app = make_app()
    app.use(MarkRead(when="before"))

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        await recorder.add(list(provider.marked_read))

    client = await serve(app)
    await client.post("/webhook", json=text_callback("x", message_id="wamid.early"))
    assert await recorder.wait_for(1) == [["wamid.early"]]


async def test_a_slow_mark_never_holds_up_the_conversation(
    make_app: MakeApp, serve: Serve, provider: FakeProvider, recorder: Recorder
) -> None:
    app = make_app()
    app.use(MarkRead())

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        await recorder.add(message.text.body)

    # Every mark's answer is held for 3 s; the conversation's next message must not wait.
    provider.delay_next(3.0, times=2, path="/v1/messages/wamid.slow-mark-1")
    client = await serve(app)
    started = asyncio.get_running_loop().time()
    await client.post("/webhook", json=text_callback("one", message_id="wamid.slow-mark-1"))
    await client.post("/webhook", json=text_callback("two", message_id="wamid.slow-mark-2"))
    assert await recorder.wait_for(2) == ["one", "two"]
    assert asyncio.get_running_loop().time() - started < 2.0


async def test_a_hung_hook_is_cancelled_and_the_handler_still_runs(
    make_app: MakeApp,
    serve: Serve,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plugins_module, "HOOK_TIMEOUT", 0.2)

    class Hangs:
        name = "hangs"

        async def before_handle(self, event: object, ctx: Context) -> None:
            await asyncio.Event().wait()

    app = make_app()
    app.use(Hangs())

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        await recorder.add(message.text.body)

    client = await serve(app)
    await client.post("/webhook", json=text_callback("still handled"))
    assert await recorder.wait_for(1) == ["still handled"]
    assert "plugin hangs took more than 0.2 s in before_handle" in caplog.text


async def test_mark_read_failure_never_fails_the_handler(
    make_app: MakeApp, serve: Serve, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    mark = MarkRead()
    app = make_app()
    app.use(mark)
    done = asyncio.Event()

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        done.set()

    provider.fail_next(
        404,
        {"errors": [{"code": 1006, "title": "Resource not found"}]},
        times=10,
        path="/v1/messages/wamid.gone",
    )
    client = await serve(app)
    with caplog.at_level(logging.WARNING, logger="whizrouter"):
        await client.post("/webhook", json=text_callback("x", message_id="wamid.gone"))
        await asyncio.wait_for(done.wait(), 5)
        await provider.wait_for(lambda c: c.method == "PUT")
        await client.close()
    assert mark.failed == 1
    assert "could not mark message wamid.gone read" in caplog.text
    assert app.dispatcher is None or app.dispatcher.dead_lettered == 0


async def test_mark_read_coalesces_a_burst_on_cloud(make_app: MakeApp, serve: Serve) -> None:
    async with FakeProvider(shape="cloud") as cloud:
        mark = MarkRead(coalesce_window=1.0)
        app = make_app(shape="cloud", base_url=cloud.base_url, api_key=cloud.api_key)
        app.use(mark)

        @app.on_message()
        async def handler(message: TextMessage, ctx: Context) -> None: ...

        client = await serve(app)
        for n in range(3):
            await client.post(
                "/webhook",
                json=text_callback(f"m{n}", message_id=f"wamid.burst-{n}", shape="cloud"),
            )
        [call] = await cloud.wait_for(
            lambda c: c.json is not None and c.json.get("status") == "read"
        )
        assert call.json == {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.burst-2",
        }
        await client.close()
        assert cloud.marked_read == ["wamid.burst-2"]
