"""The delivery promise on the durable default inbox, through the real webhook.

Redeliveries (also across a restart) reach the handlers once; a poison event is
dead-lettered while everything else keeps flowing, and a replay after the fix runs it once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import AiohttpClient
from tests.natsserver import nats_url, unique_stream
from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.testing import FakeProvider, text_callback

__all__ = ["nats_url"]  # the fixture, imported so pytest finds it

QUICK = RetryPolicy(attempts=3, base=0.01, factor=2.0, max_delay=0.05, max_total=1.0)


def counting_bot(db: Path, seen: Counter[str]) -> WhizRouter:
    app = WhizRouter(retry=QUICK)

    @app.on_message(type="text")
    async def count(message: TextMessage, ctx: Context) -> None:
        seen[message.id] += 1

    return app


async def test_redeliveries_across_a_restart_dispatch_once(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    db = tmp_path / "inbox.db"
    seen: Counter[str] = Counter()
    callbacks = [text_callback(f"m{n}", wa_id=f"1555000{n % 7:04d}") for n in range(60)]
    async with FakeProvider() as provider:
        for round_ in range(3):  # three process lifetimes on one database
            app = counting_bot(db, seen)
            app.replace_parts(client=provider.client(), inbox=inbox_from_url(f"sqlite:///{db}"))
            client = await aiohttp_client(app.make_web_app())
            for body in callbacks:  # every callback again, as a provider retry would
                assert (await client.post("/webhook", json=body)).status == 200
            assert app.dispatcher is not None
            await app.dispatcher.wait_idle()
            await client.close()  # a clean stop; the next round is a new process lifetime
            assert len(seen) == 60, f"round {round_}"
    assert set(seen.values()) == {1}


async def test_poison_event_is_dead_lettered_while_others_flow_then_replayed_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "inbox.db"
    fixed = False
    handled: Counter[str] = Counter()
    app = WhizRouter(retry=QUICK)

    @app.on_message(type="text")
    async def handler(message: TextMessage, ctx: Context) -> None:
        if message.text.body == "poison" and not fixed:
            raise RuntimeError("cannot parse this order")
        handled[message.text.body] += 1

    async with FakeProvider() as provider:
        app.replace_parts(client=provider.client(), inbox=inbox_from_url(f"sqlite:///{db}"))
        async with app:
            await app.feed(text_callback("poison", wa_id="15550000000"))
            await app.feed(text_callback("after poison", wa_id="15550000000"))
            for n in range(1, 51):
                await app.feed(text_callback(f"other {n}", wa_id=f"155500{n:05d}"))
            assert app.dispatcher is not None
            await app.dispatcher.wait_idle()
            assert handled["after poison"] == 1
            assert sum(handled[f"other {n}"] for n in range(1, 51)) == 50
            [letter] = await app.inbox.dead_letters()
            assert letter.attempts == QUICK.attempts + 1
            assert "cannot parse this order" in letter.error
            assert letter.handler.endswith("handler")
            fixed = True
            assert await app.inbox.replay([letter.seq]) == 1
            await app.dispatcher.wait_idle()
            assert handled["poison"] == 1
            assert await app.inbox.dead_letters() == []
            stats = await app.inbox.stats()
            assert stats["pending"] == 0
            assert stats["dead"] == 0


async def test_an_event_interrupted_more_often_than_the_budget_is_dead_lettered(
    tmp_path: Path,
) -> None:
    db = tmp_path / "inbox.db"
    runs: list[int] = []
    async with FakeProvider() as provider:
        for lifetime in range(3):
            app = WhizRouter(retry=RetryPolicy(attempts=1), shutdown_grace=0.05)
            started = asyncio.Event()

            @app.on_message(type="text")
            async def hangs(
                message: TextMessage, ctx: Context, started: asyncio.Event = started
            ) -> None:
                runs.append(ctx.attempt)
                started.set()
                await asyncio.Event().wait()  # never finishes: every stop interrupts it

            app.replace_parts(client=provider.client(), inbox=inbox_from_url(f"sqlite:///{db}"))
            async with app:
                if lifetime == 0:
                    await app.feed(text_callback("stuck", wa_id="15550000001"))
                if lifetime < 2:
                    await asyncio.wait_for(started.wait(), timeout=5)
                else:
                    assert app.dispatcher is not None
                    await app.dispatcher.wait_idle()
                    [letter] = await app.inbox.dead_letters()
                    assert "started 2 times without finishing" in letter.error
    assert runs == [1, 2]


@pytest.mark.parametrize("backend", ["sqlite", "nats"])
async def test_events_waiting_through_clean_restarts_count_no_attempt(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    # One conversation, one at a time: the first event hangs, the others wait behind it.
    # Each clean stop interrupts the first; the waiting ones never started, so their
    # attempt stays 1 however many restarts they sit through.
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'inbox.db'}"
    else:
        nats_server: str = request.getfixturevalue("nats_url")
        url = f"{nats_server}?stream={unique_stream()}&partitions=2&lease_ttl=1&ack_wait=2"
    attempts: dict[str, list[int]] = {}
    async with FakeProvider() as provider:
        for lifetime in range(4):
            app = WhizRouter(retry=RetryPolicy(attempts=9), shutdown_grace=0.05)
            started = asyncio.Event()

            @app.on_message(type="text")
            async def handler(
                message: TextMessage,
                ctx: Context,
                started: asyncio.Event = started,
                lifetime: int = lifetime,
            ) -> None:
                attempts.setdefault(message.text.body, []).append(ctx.attempt)
                started.set()
                if message.text.body == "first" and lifetime < 3:
                    await asyncio.Event().wait()  # interrupted by the stop

            app.replace_parts(client=provider.client(), inbox=inbox_from_url(url))
            async with app:
                if lifetime == 0:
                    for body in ("first", "second", "third"):
                        await app.feed(text_callback(body, wa_id="15550000001"))
                await asyncio.wait_for(started.wait(), timeout=5)
                if lifetime == 3:
                    assert app.dispatcher is not None
                    await app.dispatcher.wait_idle()
    assert attempts == {"first": [1, 2, 3, 4], "second": [1], "third": [1]}
