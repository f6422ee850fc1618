"""``ctx.state`` end to end over HTTP, on every backend: read-your-writes, commits with the
ack, a burst of one conversation's events (each sees the one before, though its ack is not
committed yet), retries and dead letters that leave no change, routing by state on both
payload shapes, and a bot that never uses state reading none."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BotClient
from tests.natsserver import nats_url, unique_stream
from whizrouter import (
    Context,
    F,
    RetryPolicy,
    State,
    StateGroup,
    Status,
    StoredState,
    TextMessage,
    WhizRouter,
)
from whizrouter.errors import InboxError
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.inbox.stored_state import StateWrite
from whizrouter.testing import StartBot, text_callback

__all__ = ["nats_url"]  # the fixture, imported so pytest finds it

QUICK = RetryPolicy(attempts=3, base=0.01, jitter=False)
WA_ID = "15551234567"
MakeApp = Callable[..., WhizRouter]
Serve = Callable[[WhizRouter], Awaitable[BotClient]]


@pytest.fixture(params=["memory", "sqlite", "nats"])
def inbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inbox.db'}"
    url: str = request.getfixturevalue("nats_url")
    return f"{url}?stream={unique_stream()}&partitions=1&ack_wait=2&lease_ttl=1"


async def post_and_settle(client: BotClient, app: WhizRouter, body: dict[str, Any]) -> None:
    response = await client.post("/webhook", json=body)
    assert response.status == 200, await response.text()
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), 10)


def burst(count: int, wa_id: str = WA_ID) -> dict[str, Any]:
    """One callback carrying ``count`` texts of one conversation."""
    body = text_callback("0", wa_id=wa_id)
    for n in range(1, count):
        body["messages"] += text_callback(str(n), wa_id=wa_id)["messages"]
    return body


async def test_a_burst_of_one_conversation_counts_every_event(
    make_app: MakeApp, serve: Serve, inbox_url: str
) -> None:
    app = make_app(inbox=inbox_url)
    seen: list[int] = []

    @app.on_message(type="text")
    async def count(message: TextMessage, ctx: Context) -> None:
        data = await ctx.state.data()
        await ctx.state.update(count=data.get("count", 0) + 1)
        seen.append((await ctx.state.data())["count"])  # its own write

    client = await serve(app)
    await post_and_settle(client, app, burst(40))
    stored = await app.inbox.load_state(WA_ID)
    assert stored is not None
    assert stored.data == {"count": 40}
    assert seen == list(range(1, 41))


async def test_a_failed_run_leaves_no_change_and_a_retry_starts_from_the_old_state(
    make_app: MakeApp, serve: Serve, inbox_url: str
) -> None:
    app = make_app(inbox=inbox_url, retry=QUICK)
    started: list[int] = []

    @app.on_message(type="text")
    async def count_then_fail_twice(message: TextMessage, ctx: Context) -> None:
        data = await ctx.state.data()
        started.append(data.get("count", 0))
        await ctx.state.update(count=data.get("count", 0) + 1)
        if ctx.attempt <= 2:
            raise RuntimeError("the other system is down")

    client = await serve(app)
    await post_and_settle(client, app, text_callback("one", wa_id=WA_ID))
    stored = await app.inbox.load_state(WA_ID)
    assert stored is not None
    assert stored.data == {"count": 1}
    assert started == [0, 0, 0]


async def test_a_dead_letters_change_appears_only_when_its_replay_succeeds(
    make_app: MakeApp, serve: Serve, inbox_url: str
) -> None:
    app = make_app(inbox=inbox_url, retry=QUICK)
    fixed = False

    @app.on_message(type="text")
    async def step(message: TextMessage, ctx: Context) -> None:
        await ctx.state.set("Order.paid")
        if not fixed:
            raise RuntimeError("payment service refused")

    client = await serve(app)
    await post_and_settle(client, app, text_callback("pay", wa_id=WA_ID))
    [letter] = await app.inbox.dead_letters()
    assert await app.inbox.load_state(WA_ID) is None
    fixed = True
    assert await app.inbox.replay([letter.seq]) == 1
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), 10)
    stored = await app.inbox.load_state(WA_ID)
    assert stored is not None
    assert stored.state == "Order.paid"


class Order(StateGroup):
    size = State()
    address = State()


class CountingInbox(MemoryInbox):
    """A memory inbox that counts state reads, by either of its two ways of answering."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def load_state(self, conversation: str) -> StoredState | None:
        self.loads += 1
        return MemoryInbox.cached_state(self, conversation)

    def cached_state(self, conversation: str) -> StoredState | None:
        self.loads += 1
        return super().cached_state(conversation)


def order_bot() -> WhizRouter:
    app = WhizRouter()

    @app.on_message(type="text", text="order", state=None)
    async def begin(message: TextMessage, ctx: Context) -> None:
        await ctx.state.set(Order.size)
        await ctx.reply("size?")

    @app.on_message(F.state(Order.size) & F.text(["S", "M", "L"]))
    async def size(message: TextMessage, ctx: Context) -> None:
        await ctx.state.update(size=message.text.body)
        await ctx.state.set(Order.address)
        await ctx.reply("address?")

    @app.on_message(type="text", state=Order.size)
    async def bad_size(message: TextMessage, ctx: Context) -> None:
        await ctx.reply("S, M or L?")

    @app.on_message(type="text", state=[Order.address, "Legacy.step"])
    async def address(message: TextMessage, ctx: Context) -> None:
        size = (await ctx.state.data())["size"]
        await ctx.state.clear()
        await ctx.reply(f"sending {size} to {message.text.body}")

    @app.on_message(type="text", state="*")
    async def in_some_other_flow(message: TextMessage, ctx: Context) -> None:
        await ctx.reply(f"in {await ctx.state.get()}")

    @app.on_message(type="text")
    async def fallback(message: TextMessage, ctx: Context) -> None:
        await ctx.reply("write order")

    @app.on_status(status="read", state=Order)
    async def nudge(status: Status, ctx: Context) -> None:
        await ctx.reply("still ordering?")

    return app


@pytest.mark.parametrize("shape", ["onprem", "cloud"])
async def test_routing_by_state_on_both_payload_shapes(bot_tester: StartBot, shape: str) -> None:
    bot = await bot_tester(order_bot(), shape="cloud" if shape == "cloud" else "onprem")
    assert await bot.text("hello") == ["write order"]
    assert await bot.text("order") == ["size?"]
    assert await bot.text("XL") == ["S, M or L?"]
    calls = await bot.status("wamid.sent-1", "read")
    assert [c.json["text"]["body"] for c in calls if c.json and "text" in c.json] == [
        "still ordering?"
    ]
    assert await bot.text("M") == ["address?"]
    assert await bot.text("1 Main St") == ["sending M to 1 Main St"]
    assert await bot.state() is None
    assert await bot.status("wamid.sent-1", "read") == []
    await bot.set_state("Legacy.step", {"size": "S"})
    assert await bot.text("2 Side St") == ["sending S to 2 Side St"]
    await bot.set_state("Survey.q1")
    assert await bot.text("yes") == ["in Survey.q1"]


async def test_a_bot_without_state_reads_none(make_app: MakeApp, serve: Serve) -> None:
    inbox = CountingInbox()
    app = make_app()
    app.replace_parts(inbox=inbox)

    @app.on_message(type="text")
    async def echo(message: TextMessage, ctx: Context) -> None:
        await ctx.reply(message.text.body)

    client = await serve(app)
    await post_and_settle(client, app, burst(5))
    assert inbox.loads == 0


async def test_a_handler_that_uses_state_reads_it_once_per_event(
    make_app: MakeApp, serve: Serve
) -> None:
    inbox = CountingInbox()
    app = make_app()
    app.replace_parts(inbox=inbox)

    @app.on_message(type="text")
    async def count(message: TextMessage, ctx: Context) -> None:
        await ctx.state.get()
        await ctx.state.update(seen=True)
        await ctx.state.data()

    client = await serve(app)
    await post_and_settle(client, app, text_callback("a", wa_id="1"))
    await post_and_settle(client, app, text_callback("b", wa_id="2"))
    assert inbox.loads == 2


def test_state_names_come_from_the_group() -> None:
    assert Order.size.name == "Order.size"
    assert Order.size == "Order.size"
    assert Order.states == (Order.size, Order.address)
    with pytest.raises(TypeError, match="state= takes"):
        F.state(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a name"):
        F.state(State())


async def test_state_values_must_be_json(bot_tester: StartBot) -> None:
    app = WhizRouter()
    errors: list[str] = []

    @app.on_message(type="text")
    async def bad(message: TextMessage, ctx: Context) -> None:
        try:
            await ctx.state.update(when=object())
        except TypeError as exc:
            errors.append(str(exc))

    bot = await bot_tester(app)
    await bot.text("x")
    assert errors and "must be JSON" in errors[0]
    assert await bot.state_data() == {}


def test_state_ttl_comes_from_the_keyword_else_the_environment() -> None:
    from whizrouter.defaults import DEFAULT_STATE_TTL
    from whizrouter.errors import ConfigurationError
    from whizrouter.settings import Settings

    assert Settings.resolve(env={}).state_ttl == DEFAULT_STATE_TTL == 30 * 24 * 3600
    assert Settings.resolve(env={"WHIZROUTER_STATE_TTL": "3600"}).state_ttl == 3600
    assert Settings.resolve(state_ttl=60, env={"WHIZROUTER_STATE_TTL": "3600"}).state_ttl == 60
    with pytest.raises(ConfigurationError, match="WHIZROUTER_STATE_TTL"):
        Settings.resolve(env={"WHIZROUTER_STATE_TTL": "soon"})
    with pytest.raises(ConfigurationError, match="state_ttl"):
        Settings.resolve(state_ttl=0, env={})


async def test_the_apps_state_ttl_reaches_its_inbox(make_app: MakeApp, serve: Serve) -> None:
    app = make_app(state_ttl=120)
    await serve(app)
    assert app.inbox.state_ttl == 120


class FirstCommitFails(MemoryInbox):
    """A memory inbox whose first state commit fails once the next event has read it."""

    def __init__(self, second_ran: asyncio.Event) -> None:
        super().__init__()
        self.second_ran = second_ran
        self.commits: list[list[StateWrite]] = []
        self.first_commit = asyncio.Event()
        self.second_commit = asyncio.Event()

    async def ack_with_state(self, seqs: Sequence[int], writes: Sequence[StateWrite]) -> None:
        self.commits.append(list(writes))
        if len(self.commits) == 1:
            self.first_commit.set()
            await self.second_ran.wait()
            raise InboxError("the disk is full")
        await super().ack_with_state(seqs, writes)
        self.second_commit.set()


async def test_a_write_that_read_a_failed_commit_is_not_committed_either(
    make_app: MakeApp, serve: Serve
) -> None:
    second_ran = asyncio.Event()
    inbox = FirstCommitFails(second_ran)
    app = make_app()
    app.replace_parts(inbox=inbox)
    seen: list[int] = []

    @app.on_message(type="text")
    async def count(message: TextMessage, ctx: Context) -> None:
        data = await ctx.state.data()
        seen.append(data.get("count", 0))
        await ctx.state.update(count=data.get("count", 0) + 1)
        if len(seen) == 2:  # settle only once the first event's commit is under way
            await inbox.first_commit.wait()
            second_ran.set()

    client = await serve(app)
    response = await client.post("/webhook", json=burst(2))
    assert response.status == 200
    await asyncio.wait_for(inbox.second_commit.wait(), 10)
    assert seen == [0, 1]  # the second read the first's write before its commit
    [[first], [second]] = inbox.commits
    assert first.failed and second.failed
    assert await inbox.load_state(WA_ID) is None
    assert inbox.backlog() == 2  # both run again at the next start, in order


async def test_data_is_a_copy_and_nested_values_are_copied_in(bot_tester: StartBot) -> None:
    app = WhizRouter()

    @app.on_message(type="text")
    async def cart(message: TextMessage, ctx: Context) -> None:
        items = ["tea"]
        await ctx.state.update(items=items, total=2.5, note=None, paid=False)
        items.append("not stored")
        data = await ctx.state.data()
        data["items"].append("not stored either")
        data["total"] = 0
        assert await ctx.state.data() == {
            "items": ["tea"],
            "total": 2.5,
            "note": None,
            "paid": False,
        }

    bot = await bot_tester(app)
    await bot.text("add")
    assert await bot.state_data() == {"items": ["tea"], "total": 2.5, "note": None, "paid": False}


async def test_a_burst_mixing_events_with_and_without_state_counts_every_one(
    make_app: MakeApp, serve: Serve, inbox_url: str
) -> None:
    app = make_app(inbox=inbox_url)

    @app.on_message(type="text", text="skip")
    async def plain(message: TextMessage, ctx: Context) -> None:
        await asyncio.sleep(0)

    @app.on_message(type="text")
    async def count(message: TextMessage, ctx: Context) -> None:
        data = await ctx.state.data()
        await ctx.state.update(count=data.get("count", 0) + 1)

    body = text_callback("skip", wa_id="15550009999")
    for n in range(60):
        wa_id, text = ("15550009999", "skip") if n % 2 else (WA_ID, str(n))
        body["messages"] += text_callback(text, wa_id=wa_id)["messages"]
    client = await serve(app)
    await post_and_settle(client, app, body)
    stored = await app.inbox.load_state(WA_ID)
    assert stored is not None
    assert stored.data == {"count": 30}
