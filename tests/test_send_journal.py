"""The send journal through the real webhook: a retried or replayed handler sends nothing twice.

Handlers reply and then fail; the fake provider counts the send requests it received.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import orjson
import pytest

from tests.conftest import AiohttpClient
from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.testing import BotTester, FakeProvider, StartBot, text_callback

QUICK = RetryPolicy(attempts=3, base=0.01, factor=2.0, max_delay=0.05, max_total=1.0)


def flaky_bot(ids: dict[str, list[str]], *, send_journal: bool = True) -> WhizRouter:
    """Replies, then raises on the first two attempts; records each reply's id."""
    app = WhizRouter(retry=QUICK, send_journal=send_journal)

    @app.on_message(type="text")
    async def reply_then_fail(message: TextMessage, ctx: Context) -> None:
        ids.setdefault(message.id, []).append(await ctx.reply("got " + message.text.body))
        if ctx.attempt <= 2:
            raise RuntimeError(f"the database is down (attempt {ctx.attempt})")

    return app


async def test_a_retried_handler_sends_its_reply_once_and_gets_the_first_id_back(
    bot_tester: StartBot,
) -> None:
    ids: dict[str, list[str]] = {}
    tester = await bot_tester(flaky_bot(ids))

    for n in range(3):
        await tester.text(f"hello {n}", message_id=f"wamid.in{n}", wa_id=f"1555000000{n}")

    assert tester.provider.send_requests == 3  # one per event, not three
    assert sorted(tester.replies) == ["got hello 0", "got hello 1", "got hello 2"]
    for n in range(3):
        first, second, third = ids[f"wamid.in{n}"]
        assert first == second == third
        assert tester.answered_from_journal[f"m:wamid.in{n}"] == [("#1", first)] * 2


async def test_without_the_journal_every_retry_sends_again(bot_tester: StartBot) -> None:
    ids: dict[str, list[str]] = {}
    tester = await bot_tester(flaky_bot(ids, send_journal=False))

    await tester.text("hello", message_id="wamid.in")

    assert tester.replies == ["got hello"] * 3
    assert len(set(ids["wamid.in"])) == 3
    assert tester.answered_from_journal == {}


async def test_a_changed_reply_is_sent_and_logged(
    bot_tester: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    app = WhizRouter(retry=QUICK)

    @app.on_message(type="text")
    async def counts_its_attempts(message: TextMessage, ctx: Context) -> None:
        await ctx.reply("same every time")
        await ctx.reply(f"attempt {ctx.attempt}")
        if ctx.attempt < 3:
            raise RuntimeError("not yet")

    tester = await bot_tester(app)
    with caplog.at_level(logging.INFO, logger="whizrouter.send_journal"):
        await tester.text("hi", message_id="wamid.in")

    assert tester.replies == ["same every time", "attempt 1", "attempt 2", "attempt 3"]
    assert [slot for slot, _ in tester.answered_from_journal["m:wamid.in"]] == ["#1", "#1"]
    assert sum("differs from the one an earlier run sent" in r.message for r in caplog.records)


async def test_opt_outs_and_own_keys(bot_tester: StartBot) -> None:
    app = WhizRouter(retry=QUICK)

    @app.on_message(type="text")
    async def varying(message: TextMessage, ctx: Context) -> None:
        # A varying number of sends before the keyed ones: ordinals would shift, keys do not.
        for n in range(ctx.attempt):
            await ctx.reply(f"typing {n}", idempotent=False)
        await ctx.client.send_text(ctx.conversation, "receipt", idempotency_key="receipt")
        await ctx.react("👍")
        await ctx.mark_read()
        if ctx.attempt < 2:
            raise RuntimeError("not yet")

    tester = await bot_tester(app)
    await tester.text("hi", message_id="wamid.in")

    assert tester.replies == ["typing 0", "receipt", "typing 0", "typing 1"]
    reactions = [c for c in tester.provider.sent if (c.json or {}).get("type") == "reaction"]
    assert len(reactions) == 1
    assert tester.provider.marked_read == ["wamid.in", "wamid.in"]  # not journaled
    assert [slot for slot, _ in tester.answered_from_journal["m:wamid.in"]] == ["k:receipt", "#1"]


async def test_a_client_used_outside_a_handler_sends_every_time(bot_tester: StartBot) -> None:
    app = WhizRouter()
    clients = []

    @app.on_message(type="text")
    async def note(message: TextMessage, ctx: Context) -> None:
        clients.append(ctx.client)

    tester = await bot_tester(app)
    await tester.text("hi")

    assert clients[0] is not app.client  # the handler's is a journaling view of it
    first = await app.client.send_text("15550000001", "broadcast")
    second = await app.client.send_text("15550000001", "broadcast")
    assert first != second
    assert tester.provider.send_requests == 2


async def test_a_replayed_dead_letter_does_not_send_its_reply_again(
    bot_tester: StartBot,
) -> None:
    fixed = False
    app = WhizRouter(retry=RetryPolicy(attempts=1, base=0.01, max_delay=0.01, max_total=1.0))

    @app.on_message(type="text")
    async def reply_then_fail(message: TextMessage, ctx: Context) -> None:
        await ctx.reply("your order is confirmed")
        if not fixed:
            raise RuntimeError("the order database is down")
        await ctx.reply("and paid")

    tester = await bot_tester(app, raise_errors=False)
    await tester.text("order", message_id="wamid.order")
    assert len(await tester.dead_letters()) == 1
    assert tester.replies == ["your order is confirmed"]

    fixed = True
    assert await app.inbox.replay() == 1
    await tester.settled()

    assert tester.replies == ["your order is confirmed", "and paid"]
    assert tester.answered_from_journal["m:wamid.order"][-1][0] == "#1"
    assert await tester.dead_letters() == []


async def test_on_sqlite_a_retry_finds_the_journal_and_the_ack_clears_it(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    db = tmp_path / "inbox.db"
    ids: dict[str, list[str]] = {}
    async with FakeProvider() as provider:
        app = flaky_bot(ids)
        app.replace_parts(client=provider.client(), inbox=inbox_from_url(f"sqlite:///{db}"))
        client = await aiohttp_client(app.make_web_app())
        for n in range(5):
            body = text_callback("hi", message_id=f"wamid.in{n}", wa_id=f"1555000000{n}")
            assert (await client.post("/webhook", json=body)).status == 200
        assert app.dispatcher is not None
        await app.dispatcher.wait_idle()
        await client.close()

    assert provider.send_requests == 5
    assert all(len(set(sent)) == 1 and len(sent) == 3 for sent in ids.values())
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM send_journal").fetchone()[0] == 0


async def test_bot_tester_shows_no_journal_answers_for_a_first_run() -> None:
    app = WhizRouter()

    @app.on_message(type="text")
    async def echo(message: TextMessage, ctx: Context) -> None:
        await ctx.reply(message.text.body)

    async with BotTester(app) as tester:
        await tester.text("hi")
        assert tester.answered_from_journal == {}
        assert tester.provider.send_requests == 1


def test_the_journal_benchmark_smoke_mode_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.journal_overhead import main

    assert main(["--smoke"]) == 0
    output = capsys.readouterr().out
    assert "journaled" in output
    assert "ratio" in output


async def test_a_retried_reply_with_a_file_uploads_it_once_and_sends_it_once(
    bot_tester: StartBot, tmp_path: Path
) -> None:
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\n" + b"pixels" * 100)
    app = WhizRouter(retry=QUICK)
    ids: list[str] = []

    @app.on_message(type="text")
    async def chart_then_fail(message: TextMessage, ctx: Context) -> None:
        ids.append(await ctx.reply_image(path=chart, caption="your chart"))
        if ctx.attempt <= 2:
            raise RuntimeError(f"the database is down (attempt {ctx.attempt})")

    tester = await bot_tester(app)
    await tester.text("chart please", message_id="wamid.in")

    uploads = [call for call in tester.provider.calls if call.kind == "media_upload"]
    assert len(uploads) == 1
    assert tester.provider.send_requests == 1
    assert len(ids) == 3 and len(set(ids)) == 1
    assert [slot for slot, _ in tester.answered_from_journal["m:wamid.in"]] == [
        "#1",
        "#2",
        "#1",
        "#2",
    ]


async def test_on_sqlite_an_ack_with_a_state_write_clears_the_journal_too(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    db = tmp_path / "inbox.db"
    async with FakeProvider() as provider:
        app = WhizRouter(retry=QUICK)

        @app.on_message(type="text")
        async def count_reply_then_fail(message: TextMessage, ctx: Context) -> None:
            seen = (await ctx.state.data()).get("seen", 0)
            await ctx.state.update(seen=seen + 1)
            await ctx.reply(f"message {seen + 1}")
            if ctx.attempt == 1:
                raise RuntimeError("the database is down")

        app.replace_parts(client=provider.client(), inbox=inbox_from_url(f"sqlite:///{db}"))
        client = await aiohttp_client(app.make_web_app())
        for n in range(3):
            body = text_callback("hi", message_id=f"wamid.in{n}")
            assert (await client.post("/webhook", json=body)).status == 200
        assert app.dispatcher is not None
        await app.dispatcher.wait_idle()
        await client.close()

    # One conversation: each message counted once, each reply sent once.
    assert provider.send_requests == 3
    assert sorted(call.json["text"]["body"] for call in provider.sent if call.json) == [
        "message 1",
        "message 2",
        "message 3",
    ]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM send_journal").fetchone()[0] == 0
        [(data,)] = conn.execute("SELECT data FROM conversation_state").fetchall()
        assert orjson.loads(data) == {"seen": 3}
