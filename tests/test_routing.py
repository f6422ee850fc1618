"""Routers, decorators, first-match order, filters and frozen registration."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from tests.conftest import BotClient, Recorder, fixture_bytes
from whizrouter import (
    Context,
    F,
    Filter,
    Message,
    RegistrationClosedError,
    Router,
    Status,
    TextMessage,
    WhizRouter,
)
from whizrouter.testing import status_callback, text_callback

Serve = Callable[[WhizRouter], Awaitable[BotClient]]
MakeApp = Callable[..., WhizRouter]


class Event:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def test_keyword_filters_and_composition() -> None:
    text = Event(type="text", from_="1", text=Event(body="Hello there"))
    image = Event(type="image", from_="2")
    assert F.type("text")(text)
    assert not F.type("text")(image)
    assert F.type(["image", "video"])(image)
    assert F.text("Hello there")(text)
    assert F.text(re.compile(r"^hel", re.I))(text)
    assert not F.text("hello")(image)
    assert (F.type("text") & F.from_("1"))(text)
    assert not (F.type("text") & F.from_("2"))(text)
    assert (F.type("video") | F.from_("2"))(image)
    assert (~F.type("text"))(image)
    assert (F.type("text") & (lambda e: e.from_ == "1"))(text)
    # A plain callable on the left composes too.
    assert ((lambda e: e.from_ == "1") & F.type("text"))(text)
    assert not ((lambda e: e.from_ == "1") & F.type("image"))(text)
    assert ((lambda e: e.from_ == "9") | F.type("image"))(image)
    assert not ((lambda e: e.from_ == "9") | F.type("video"))(image)
    assert "type" in repr(F.type("text") & ~F.from_("x"))


def test_text_takes_a_list_of_strings_and_regexes() -> None:
    menu = Event(type="text", text=Event(body="menu"))
    order = Event(type="text", text=Event(body="order 7"))
    other = Event(type="text", text=Event(body="hello"))
    wanted = F.text(["menu", "help", re.compile(r"^order \d+")])
    assert wanted(menu) and wanted(order)
    assert not wanted(other)
    assert not wanted(Event(type="image"))
    assert "text == 'menu'" in str(wanted) and "^order" in str(wanted)
    with pytest.raises(TypeError, match="text= takes strings or compiled regexes, got int"):
        F.text(["menu", 3])  # type: ignore[list-item]


def test_a_predicate_that_raises_does_not_match() -> None:
    def broken(event: Any) -> bool:
        raise KeyError("x")

    assert not Filter(broken)(Event())


def test_first_match_wins_and_included_routers_come_after_own_handlers() -> None:
    root = Router(name="root")
    child = Router(name="child")
    grandchild = Router(name="grandchild")
    child.include_router(grandchild)

    async def a(m: Message, c: Context) -> None: ...
    async def b(m: Message, c: Context) -> None: ...
    async def c(m: Message, c_: Context) -> None: ...
    async def d(m: Message, c_: Context) -> None: ...

    grandchild.on_message(type="text")(d)
    child.on_message(type="text")(c)
    root.include_router(child)
    root.on_message(type="image")(a)
    root.on_message(type="text", text="exact")(b)
    text = Event(type="text", text=Event(body="other"))
    exact = Event(type="text", text=Event(body="exact"))
    assert root.resolve("message", exact).callback is b  # type: ignore[union-attr]
    assert root.resolve("message", text).callback is c  # type: ignore[union-attr]
    assert root.resolve("status", text) is None
    assert [spec.callback for spec in root.handlers()] == [a, b, c, d]


def test_router_cycles_are_refused() -> None:
    a, b = Router(name="a"), Router(name="b")
    a.include_router(b)
    with pytest.raises(ValueError, match="cycle"):
        b.include_router(a)


def test_replace_handlers_covers_included_routers_and_puts_them_back() -> None:
    outer, inner = Router(name="outer"), Router(name="inner")
    outer.include_router(inner)

    @outer.on_message()
    async def first(message: Message, ctx: Context) -> None: ...

    @inner.on_status()
    async def second(status: Status, ctx: Context) -> None: ...

    before = outer.handlers()
    restore = outer.replace_handlers(lambda spec: replace(spec, name=spec.name + "!"))
    assert [spec.name for spec in outer.handlers()] == [spec.name + "!" for spec in before]
    restore()
    assert outer.handlers() == before
    outer.freeze()
    with pytest.raises(RegistrationClosedError, match="replacing handlers on router 'outer'"):
        outer.replace_handlers(lambda spec: spec)


async def test_registration_closes_when_the_app_starts(make_app: MakeApp) -> None:
    app = make_app()
    router = Router(name="late")
    async with app:
        with pytest.raises(RegistrationClosedError, match="before `async with app`"):

            @app.on_message()
            async def late(message: Message, ctx: Context) -> None: ...

        with pytest.raises(RegistrationClosedError):
            app.include_router(router)
        with pytest.raises(RegistrationClosedError):
            app.use(object())
    # Stopped, the app takes handlers again (a module-level app shared by several tests),
    # and the next start uses them.
    seen: list[str] = []

    @app.on_message()
    async def later(message: TextMessage, ctx: Context) -> None:
        seen.append(message.text.body)

    async with app:
        await app.feed(text_callback("again"))
        assert app.dispatcher is not None
        await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert seen == ["again"]


async def test_routers_in_a_running_bot(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = make_app()
    orders = Router(name="orders")
    receipts = Router(name="receipts")

    @orders.on_message(text=re.compile(r"^order "))
    async def order(message: TextMessage, ctx: Context) -> None:
        await recorder.add(("order", message.text.body))

    @receipts.on_status(status=["delivered", "read"])
    async def receipt(status: Status, ctx: Context) -> None:
        await recorder.add(("receipt", status.status))

    @app.on_message(type="text", text=["menu", "help"])
    async def menu(message: TextMessage, ctx: Context) -> None:
        await recorder.add(("menu", message.text.body))

    @app.on_message(F.type("text") & ~F.from_("15550000009"))
    async def fallback(message: TextMessage, ctx: Context) -> None:
        await recorder.add(("fallback", message.text.body))

    app.include_router(orders)
    app.include_router(receipts)
    client = await serve(app)
    await client.post("/webhook", json=text_callback("order 42", wa_id="15550000001"))
    await client.post("/webhook", json=text_callback("hello", wa_id="15550000002"))
    await client.post("/webhook", json=text_callback("help", wa_id="15550000004"))
    await client.post("/webhook", json=text_callback("ignored", wa_id="15550000009"))
    await client.post(
        "/webhook", json=status_callback("wamid.x", "read", recipient_id="15550000003")
    )
    await client.post(
        "/webhook", json=status_callback("wamid.x", "sent", recipient_id="15550000003")
    )
    await client.post("/webhook", data=fixture_bytes("onprem/status_delivered.json"))
    items = await recorder.wait_for(5)
    # "order 42" also matches the app's own fallback, which is searched first.
    assert sorted(items) == sorted(
        [
            ("fallback", "order 42"),
            ("fallback", "hello"),
            ("menu", "help"),
            ("receipt", "read"),
            ("receipt", "delivered"),
        ]
    )
