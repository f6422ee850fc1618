"""Plugin hooks, discovery by name, and the first-party mark-read plugin."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from whizrouter_plugins.mark_read import MarkRead

from tests.conftest import BotClient, Recorder
from whizrouter import (
    ConfigurationError,
    Context,
    Message,
    Plugin,
    PluginError,
    TextMessage,
    WhizRouter,
)
from whizrouter import plugins as plugins_module
from whizrouter.plugins import check_plugins, hooks_of, installed_plugins
from whizrouter.server import serve_forever
from whizrouter.testing import FakeProvider, free_port, text_callback

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


# --------------------------------------------------------------------------- hook checks


async def refused_at_start(app: WhizRouter) -> str:
    """Run ``app`` as ``whizrouter run`` does; return the PluginError's message, once sure
    that nothing listens on the port it was given."""
    port = free_port()
    with pytest.raises(PluginError) as refused:
        await serve_forever(app, host="127.0.0.1", port=port)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    assert not app.started
    return str(refused.value)


async def test_a_misspelt_hook_is_refused_at_startup(make_app: MakeApp) -> None:
    class Typos:
        name = "typos"

        async def before_handler(self, event: Any, ctx: Context) -> None: ...

        async def on_startup(self, app: WhizRouter) -> None: ...

        def onerror(self, event: Any, ctx: Context, exc: BaseException) -> None: ...

    message = await refused_at_start(make_app(plugins=[Typos()]))
    assert "plugin typos: before_handler is not a plugin hook" in message
    assert "rename it to before_handle (`async def before_handle(self, event, ctx)" in message
    assert "plugin typos: on_startup is not a plugin hook" in message
    assert "rename it to startup (`async def startup(self, app) -> None`)" in message
    assert "plugin typos: onerror is not a plugin hook" in message
    assert "rename it to on_error (`async def on_error(self, event, ctx, exc)" in message


async def test_a_hook_that_is_not_a_coroutine_function_is_refused(make_app: MakeApp) -> None:
    class Sync:
        name = "sync"

        def after_handle(self, event: Any, ctx: Context) -> None: ...

    message = await refused_at_start(make_app(plugins=[Sync()]))
    assert "plugin sync: hook after_handle is a plain function, but hooks are awaited" in message
    assert "write `async def after_handle(self, event, ctx) -> None`" in message


async def test_a_hook_with_the_wrong_signature_is_refused(make_app: MakeApp) -> None:
    class Arity:
        async def on_error(self, event: Any, ctx: Context) -> None: ...

        async def startup(self, app: WhizRouter, extra: int) -> None: ...

    message = await refused_at_start(make_app(plugins=[Arity()]))
    assert "plugin Arity: hook on_error cannot be called as on_error(event, ctx, exc)" in message
    assert "write `async def on_error(self, event, ctx, exc) -> None`" in message
    assert "plugin Arity: hook startup cannot be called as startup(app)" in message


async def test_a_plugin_class_instead_of_an_instance_is_refused(make_app: MakeApp) -> None:
    message = await refused_at_start(make_app(plugins=[MarkRead]))
    assert "plugin mark-read is a class; enable an instance of it: app.use(MarkRead())" in message


async def test_a_valid_plugin_with_other_public_methods_starts(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    class Audit:
        name = "audit"

        def __init__(self) -> None:
            self.seen: list[str] = []

        async def after_handle(self, event: Any, ctx: Context, *more: object) -> None:
            self.seen.append(ctx.event_id)
            await recorder.add("after")

        def status(self) -> str:
            return "ok"

        def setup_logging(self) -> None: ...

        async def report(self) -> list[str]:
            return self.seen

        @property
        def on_startup(self) -> bool:  # a near miss, but a property: never taken for a hook
            raise AssertionError("read at startup")

    audit = Audit()
    app = make_app(plugins=[audit, "mark-read"])

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None: ...

    client = await serve(app)
    assert (await client.post("/webhook", json=text_callback("hi"))).status == 200
    await recorder.wait_for(1)
    assert len(audit.seen) == 1


def test_a_plugin_subclass_is_checked_and_its_unset_hooks_are_never_called() -> None:
    class Audit(Plugin):
        async def on_error(self, event: Any, ctx: Context, exc: BaseException) -> None: ...

    check_plugins([Audit(), MarkRead()])
    assert hooks_of([Audit()], "before_handle") == []
    assert [plugin for plugin, _ in hooks_of([Audit()], "on_error")] != []
