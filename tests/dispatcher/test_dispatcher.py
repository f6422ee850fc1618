"""The dispatcher as a whole (``whizrouter.dispatcher.dispatcher``): what becomes of events no
handler wants or nobody can decode, a failing inbox, and the stop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.conftest import Recorder, fixture_bytes
from tests.dispatcher import MakeApp, Serve, post_texts
from whizrouter import Context, InboxUnavailableError, Message, RetryPolicy, TextMessage
from whizrouter.inbox.base import RawEvent, StoredEvent
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.stored_body import decode_event
from whizrouter.testing import text_callback


async def test_unhandled_events_are_settled(make_app: MakeApp, serve: Serve) -> None:
    app = make_app()

    @app.on_message(type="image")
    async def on_image(message: Message, ctx: Context) -> None:
        raise AssertionError("a text is no image")

    client = await serve(app)
    await post_texts(client, "15550000001", ["nobody listens"])
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert app.inbox.backlog() == 0
    assert app.dispatcher is not None and app.dispatcher.unhandled == 1


async def test_events_of_a_kind_without_handlers_are_settled_without_decoding(
    make_app: MakeApp, serve: Serve, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []

    def counting_decode(stored: StoredEvent) -> tuple[Any, Any]:
        decoded.append(stored.kind)
        return decode_event(stored)

    # The app's handling hands this module-level function to its dispatcher at start.
    monkeypatch.setattr("whizrouter.handling.decode_event", counting_decode)
    app = make_app()

    @app.on_message()
    async def on_message(message: TextMessage, ctx: Context) -> None:
        await recorder.add(message.text.body)

    client = await serve(app)
    # Stored as a receiver process would store them for its workers (this app's own receiver
    # would not store statuses at all: see tests/test_receiver.py).
    for name in ("status_sent.json", "status_delivered.json", "status_read.json"):
        assert await app.feed(fixture_bytes("onprem/" + name)) == 1
    await post_texts(client, "15550000001", ["wanted"])
    assert await recorder.wait_for(1) == ["wanted"]
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert decoded == ["message"]  # no status handler: no typed status built
    assert app.dispatcher.unhandled == 3
    assert app.inbox.backlog() == 0


async def test_an_event_that_cannot_be_decoded_is_dead_lettered_saying_why(
    make_app: MakeApp,
) -> None:
    app = make_app()

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        raise AssertionError("never reached")

    async with app:
        assert app.dispatcher is not None
        broken = RawEvent("message", "m:wamid.BROKEN", "15550000001", b"[5]")
        await app.inbox.append([broken])
        await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
        [letter] = await app.inbox.dead_letters()
    assert (letter.key, letter.handler, letter.attempts) == ("m:wamid.BROKEN", "<decode>", 1)
    assert letter.error == "could not decode event: stored body is not a JSON object (got list)"


class FlakyClaimInbox(MemoryInbox):
    """A memory inbox whose first claims fail as a full disk would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def claim(self, limit: int) -> list[StoredEvent]:
        if self.failures:
            self.failures -= 1
            raise InboxUnavailableError("cannot write: database or disk is full; free disk space")
        return await super().claim(limit)


async def test_the_dispatcher_waits_out_a_storage_failure_and_goes_on(
    make_app: MakeApp, serve: Serve, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = FlakyClaimInbox(failures=3)
    app = make_app(inbox=inbox)

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        await recorder.add(message.text.body)

    client = await serve(app)
    await post_texts(client, "15550000001", ["one", "two"])
    assert await recorder.wait_for(2) == ["one", "two"]
    assert inbox.failures == 0 and app.failure is None
    [logged] = [r for r in caplog.records if "cannot hand out events now" in r.getMessage()]
    assert "free disk space" in logged.getMessage()


async def test_stop_drains_running_handlers(make_app: MakeApp) -> None:
    app = make_app(shutdown_grace=5.0)
    started = asyncio.Event()
    finished: list[str] = []

    @app.on_message()
    async def slow(message: TextMessage, ctx: Context) -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.append(message.text.body)

    async with app:
        await app.feed(text_callback("in flight"))
        await asyncio.wait_for(started.wait(), timeout=5)
    assert finished == ["in flight"]


async def test_stop_cancels_handlers_after_the_grace_period(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(shutdown_grace=0.1)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @app.on_message()
    async def forever(message: Message, ctx: Context) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with caplog.at_level(logging.WARNING, logger="whizrouter"):
        async with app:
            await app.feed(text_callback("stuck", message_id="wamid.stuck-1"))
            await asyncio.wait_for(started.wait(), timeout=5)
    assert cancelled.is_set()
    [warning] = [r.getMessage() for r in caplog.records if "grace period" in r.getMessage()]
    # Which events were cut short, and what becomes of them.
    assert "cancelling 1: m:wamid.stuck-1 in " in warning and "forever" in warning
    assert "the memory inbox loses them" in warning


async def test_the_counters_say_what_became_of_each_event(make_app: MakeApp, serve: Serve) -> None:
    app = make_app(retry=RetryPolicy(attempts=1, base=0.01, max_delay=0.01, max_total=1.0))

    @app.on_message(text="poison")
    async def poison(message: TextMessage, ctx: Context) -> None:
        raise RuntimeError("boom")

    @app.on_message(text="fine")
    async def fine(message: TextMessage, ctx: Context) -> None:
        assert app.dispatcher is not None
        assert app.dispatcher.running_handlers() == [f"{ctx.event_id} in {ctx.handler}"]

    client = await serve(app)
    await post_texts(client, "15550000001", ["poison", "fine", "nobody wants this"])
    dispatcher = app.dispatcher
    assert dispatcher is not None
    await asyncio.wait_for(dispatcher.wait_idle(), timeout=5)
    counters = (
        dispatcher.handled,
        dispatcher.failed_attempts,
        dispatcher.dead_lettered,
        dispatcher.unhandled,
        dispatcher.in_flight,
    )
    assert counters == (1, 2, 1, 1, 0)
    assert dispatcher.running_handlers() == []
