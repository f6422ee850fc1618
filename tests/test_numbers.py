"""Several numbers: each receiving number answered with its own key, over HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from whizrouter_plugins.mark_read import MarkRead

from whizrouter import (
    ConfigurationError,
    Context,
    F,
    Message,
    Number,
    RawEvent,
    Status,
    StoredEvent,
    TextMessage,
    WhizRouter,
)
from whizrouter.client import KEY_HEADER
from whizrouter.payloads import split_callback
from whizrouter.stored_body import decode_event
from whizrouter.testing import FakeProvider, StartBot, status_callback, text_callback
from whizrouter.testing.bot_tester import texts_of

from .conftest import Recorder

KEYS = {"111": "key-one-111", "222": "key-two-222"}
WEBHOOK = "https://bot.example.com/webhook"


@pytest.fixture
async def cloud() -> AsyncIterator[FakeProvider]:
    async with FakeProvider(shape="cloud", numbers=KEYS) as fake:
        yield fake


@pytest.fixture
async def onprem() -> AsyncIterator[FakeProvider]:
    async with FakeProvider(numbers={"sales": "key-sales", "support": "key-support"}) as fake:
        yield fake


def echo_bot(**kwargs: Any) -> WhizRouter:
    kwargs.setdefault("inbox", "memory")
    app = WhizRouter(**kwargs)

    @app.on_message(type="text")
    async def echo(message: TextMessage, ctx: Context) -> None:
        await ctx.reply(f"{ctx.number}: {message.text.body}")

    return app


async def test_replies_carry_the_key_of_the_number_that_received(
    cloud: FakeProvider, bot_tester: StartBot
) -> None:
    app = echo_bot(numbers=cloud.numbers(), plugins=[MarkRead(coalesce_window=0)])
    bot = await bot_tester(app, provider=cloud)
    assert await bot.text("hi", number="111") == ["111: hi"]
    assert await bot.text("ho", number="222") == ["222: ho"]
    by_number = [(cloud.number_of(call), call.kind) for call in cloud.calls if call.ok]
    # The reply and the mark-read of each message went out with its own number's key.
    assert by_number == [
        ("111", "send"),
        ("111", "mark_read"),
        ("222", "send"),
        ("222", "mark_read"),
    ]


async def test_each_number_goes_to_its_own_base_url(bot_tester: StartBot) -> None:
    async with (
        FakeProvider(shape="cloud", api_key="k1") as one,
        FakeProvider(shape="cloud", api_key="k2") as two,
    ):
        app = echo_bot(
            numbers={"111": Number("k1", one.base_url), "222": Number("k2", two.base_url)},
            shape="cloud",
        )
        bot = await bot_tester(app, shape="cloud")
        await bot.text("to one", number="111")
        await bot.text("to two", number="222")
        assert texts_of(one.sent) == ["111: to one"]
        assert texts_of(two.sent) == ["222: to two"]
        assert [call.headers[KEY_HEADER] for call in one.sent + two.sent] == ["k1", "k2"]
        assert bot.provider.sent == []  # the app's own key answered nothing


async def test_onprem_numbers_are_told_apart_by_their_path(
    onprem: FakeProvider, bot_tester: StartBot
) -> None:
    app = echo_bot(numbers=onprem.numbers())
    bot = await bot_tester(app, provider=onprem)
    assert await bot.text("a", number="sales") == ["sales: a"]
    assert await bot.text("b", number="support") == ["support: b"]
    assert [onprem.number_of(call) for call in onprem.sent] == ["sales", "support"]


async def test_routing_by_number(cloud: FakeProvider, bot_tester: StartBot) -> None:
    app = WhizRouter(inbox="memory", numbers=cloud.numbers())

    @app.on_message(number="111")
    async def sales(message: Message, ctx: Context) -> None:
        await ctx.reply("sales desk")

    @app.on_message(F.number(["222"]) & F.type("text"))
    async def support(message: Message, ctx: Context) -> None:
        await ctx.reply("support desk")

    @app.on_status(number="222")
    async def delivered(status: Status, ctx: Context) -> None:
        await ctx.client.send_text(status.recipient_id or "", f"status on {ctx.number}")

    bot = await bot_tester(app, provider=cloud)
    assert await bot.text("x", number="111") == ["sales desk"]
    assert await bot.text("x", number="222") == ["support desk"]
    calls = await bot.status("wamid.out-1", "delivered", number="222")
    assert texts_of(calls) == ["status on 222"]
    assert [cloud.number_of(call) for call in calls] == ["222"]
    assert await bot.status("wamid.out-2", "delivered", number="111") == []


async def test_an_event_for_an_unknown_number_is_dead_lettered(
    cloud: FakeProvider, bot_tester: StartBot
) -> None:
    bot = await bot_tester(echo_bot(numbers=cloud.numbers()), provider=cloud, raise_errors=False)
    assert await bot.send(text_callback("who?", shape="cloud", phone_number_id="999")) == []
    [letter] = await bot.dead_letters()
    assert letter.handler == "<numbers>"
    assert "number '999', which is not configured" in letter.error
    assert "WHIZARD_NUMBERS" in letter.error
    assert cloud.sent == []


async def test_an_onprem_event_naming_no_number_needs_a_key_of_its_own(
    onprem: FakeProvider,
) -> None:
    app = echo_bot(numbers=onprem.numbers(), base_url=onprem.base_url)
    server = TestServer(app.make_web_app())
    async with TestClient(server) as client:
        # Posted to /webhook instead of /webhook/<name>, and no WHIZARD_API_KEY: dead.
        response = await client.post("/webhook", data=orjson.dumps(text_callback("lost")))
        assert response.status == 200
        dispatcher = app.dispatcher
        assert dispatcher is not None
        await dispatcher.wait_idle()
        [letter] = await app.inbox.dead_letters()
        assert "names no receiving number" in letter.error
        assert "WHIZARD_API_KEY" in letter.error
        # Its own path works.
        response = await client.post("/webhook/sales", data=orjson.dumps(text_callback("ok")))
        assert response.status == 200
        [reply] = await onprem.wait_for(lambda call: call.kind == "send")
        assert onprem.number_of(reply) == "sales"


async def test_the_number_survives_storage_and_a_restart(
    onprem: FakeProvider, tmp_path: Path
) -> None:
    inbox = f"sqlite:///{tmp_path / 'inbox.db'}"
    receiver = WhizRouter(inbox=inbox, numbers=onprem.numbers(), role="receiver")
    async with TestClient(TestServer(receiver.make_web_app())) as client:
        response = await client.post("/webhook/support", data=orjson.dumps(text_callback("hi")))
        assert response.status == 200
    worker = echo_bot(inbox=inbox, numbers=onprem.numbers())
    async with worker:
        [reply] = await onprem.wait_for(lambda call: call.kind == "send")
    assert onprem.number_of(reply) == "support"
    assert reply.json["text"]["body"] == "support: hi"


def test_the_stored_body_keeps_the_number() -> None:
    [stored] = split_callback(text_callback("hi"), "sales")
    assert b'"business":{"number":"sales"}' in stored.body
    [cloud] = split_callback(text_callback("hi", shape="cloud", phone_number_id="123"))
    for raw, number in ((stored, "sales"), (cloud, "123")):
        event, _ = decode_event(_stored(raw))
        assert F.number(number)(event)
    [plain] = split_callback(text_callback("hi"))
    assert decode_event(_stored(plain))[0].business is None


def _stored(raw: RawEvent) -> StoredEvent:
    return StoredEvent(1, raw.kind, raw.key, raw.conversation, raw.body)


async def test_bootstrap_registers_each_number_with_its_key(
    onprem: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    app = WhizRouter(inbox="memory", numbers=onprem.numbers(), webhook_url=WEBHOOK)
    with caplog.at_level(logging.INFO, logger="whizrouter"):
        async with app:
            pass
    assert onprem.webhook_configs == {
        "sales": {"url": WEBHOOK + "/sales"},
        "support": {"url": WEBHOOK + "/support"},
    }
    assert onprem.webhook_config == {}  # the app's own key registered nothing
    lines = [r.getMessage() for r in caplog.records if "webhook registration" in r.getMessage()]
    assert lines == [
        f"webhook registration of number sales: registered {WEBHOOK}/sales",
        f"webhook registration of number support: registered {WEBHOOK}/support",
    ]
    assert all("key-" not in record.getMessage() for record in caplog.records)


async def test_bootstrap_registers_cloud_numbers_at_the_shared_url(cloud: FakeProvider) -> None:
    async with WhizRouter(inbox="memory", numbers=cloud.numbers(), webhook_url=WEBHOOK):
        pass
    assert cloud.webhook_configs == {"111": {"url": WEBHOOK}, "222": {"url": WEBHOOK}}


async def test_numbers_from_the_environment(
    onprem: FakeProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bot_tester: StartBot
) -> None:
    config = {
        "sales": {"api_key": "key-sales", "base_url": onprem.base_url},
        "support": {"api_key": "key-support"},
    }
    monkeypatch.setenv("WHIZARD_BASE_URL", onprem.base_url)
    monkeypatch.setenv("WHIZARD_NUMBERS", orjson.dumps(config).decode())
    bot = await bot_tester(echo_bot(), provider=onprem)
    assert await bot.text("env", number="support") == ["support: env"]
    await bot.close()
    path = tmp_path / "numbers.json"
    path.write_bytes(orjson.dumps(config))
    monkeypatch.setenv("WHIZARD_NUMBERS", str(path))
    app = echo_bot()
    assert app.numbers is not None and sorted(app.numbers) == ["sales", "support"]


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ('{"sales": "key-secret-1", ', "not valid JSON (line 1"),
        ("[1]", "must be a JSON object"),
        ("/no/such/numbers.json", "cannot be read"),
        ('{"sales": {"api_key": "key-secret-1", "url": "x"}}', "unknown fields ['url']"),
        ('{"sales": {"api_key": "key-secret-1", "shape": "x"}}', "shape 'x'"),
        ('{"a/b": "key-secret-1"}', "not a usable name"),
        ('{"..": "key-secret-1"}', "not a usable name"),
        ('{"sales": {"base_url": "https://x.example"}}', "needs api_key"),
    ],
)
def test_a_bad_numbers_setting_names_it_and_hides_keys(
    monkeypatch: pytest.MonkeyPatch, value: str, complaint: str
) -> None:
    monkeypatch.setenv("WHIZARD_BASE_URL", "https://waba.example.com")
    monkeypatch.setenv("WHIZARD_NUMBERS", value)
    with pytest.raises(ConfigurationError, match=r".*") as caught:
        WhizRouter(inbox="memory")
    assert complaint in str(caught.value)
    assert "key-secret" not in str(caught.value)


def test_a_number_needs_a_base_url() -> None:
    with pytest.raises(ConfigurationError, match="no base_url and WHIZARD_BASE_URL is not set"):
        WhizRouter(inbox="memory", numbers={"sales": "key-sales"})


def test_keys_never_show_in_reprs() -> None:
    app = WhizRouter(
        inbox="memory", numbers={"111": Number("key-secret-9", "https://waba.example.com")}
    )
    assert app.numbers is not None
    shown = repr(app.numbers) + repr(app.numbers.numbers) + repr(app.settings)
    shown += repr(app.numbers.client("111"))
    assert "key-secret-9" not in shown
    assert "111" in shown


async def test_one_key_keeps_todays_path(provider: FakeProvider, bot_tester: StartBot) -> None:
    recorder = Recorder()
    # Without the send journal's view, the context's client is the app's own client itself.
    app = WhizRouter(inbox="memory", send_journal=False)

    @app.on_message()
    async def seen(message: Message, ctx: Context) -> None:
        await recorder.add((ctx.number, ctx.client is app.client))

    bot = await bot_tester(app, provider=provider)
    await bot.text("hi")
    assert app.numbers is None
    assert recorder.items == [(None, True)]
    # Without numbers, no per-number path is served.
    assert await bot.post(text_callback("x"), number="sales") == 404


async def test_cloud_events_name_their_number_even_with_one_key(
    bot_tester: StartBot,
) -> None:
    recorder = Recorder()
    app = WhizRouter(inbox="memory", shape="cloud")

    @app.on_message()
    async def seen(message: Message, ctx: Context) -> None:
        await recorder.add(ctx.number)

    bot = await bot_tester(app)
    await bot.send(status_callback("wamid.x", "sent", shape="cloud"))
    await bot.text("hi", number="555")
    assert recorder.items == ["555"]
