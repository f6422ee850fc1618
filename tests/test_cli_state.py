"""``whizrouter state show|clear`` against a running bot, and a dead letter's state change
that appears only once ``whizrouter dead replay`` ran it successfully."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from tests.natsserver import nats_url, unique_stream
from tests.test_cli_inbox import cli
from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.testing import FakeProvider, text_callback

__all__ = ["nats_url"]  # the fixture, imported so pytest finds it

WA_ID = "15550000001"


@pytest.fixture(params=["sqlite", "nats"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inbox.db'}"
    server: str = request.getfixturevalue("nats_url")
    return f"{server}?stream={unique_stream()}&partitions=1&ack_wait=2&lease_ttl=1"


async def test_state_show_clear_and_dead_replay_while_the_bot_runs(url: str) -> None:
    app = WhizRouter(retry=RetryPolicy(attempts=0))
    broken = True
    done = asyncio.Event()
    found: list[str | None] = []

    @app.on_message(type="text")
    async def sign_up(message: TextMessage, ctx: Context) -> None:
        found.append(await ctx.state.get())
        await ctx.state.set("Signup.email")
        await ctx.state.update(name=message.text.body)
        if broken:
            raise RuntimeError("the CRM is down")
        done.set()

    async with FakeProvider() as provider:
        app.replace_parts(client=provider.client(), inbox=inbox_from_url(url))
        async with app:
            assert app.dispatcher is not None
            await app.feed(text_callback("Ann", wa_id=WA_ID))
            await asyncio.wait_for(app.dispatcher.wait_idle(), 10)
            out = await cli("state", "show", WA_ID, "--inbox", url, code=1)
            assert f"conversation {WA_ID} has no state" in out
            [letter] = await app.inbox.dead_letters()

            broken = False
            await cli("dead", "replay", str(letter.seq), "--inbox", url)
            await asyncio.wait_for(done.wait(), 10)
            await asyncio.wait_for(app.dispatcher.wait_idle(), 10)
            out = await cli("state", "show", WA_ID, "--inbox", url)
            assert orjson.loads(out) == {
                "conversation": WA_ID,
                "state": "Signup.email",
                "data": {"name": "Ann"},
            }
            assert len(out.strip().splitlines()) == 1

            out = await cli("state", "clear", WA_ID, "--inbox", url)
            assert out == f"cleared the state of conversation {WA_ID}\n"
            # The running bot sees it within its inbox's poll interval (about a second); NATS
            # keeps a cleared state as an empty record (see whizrouter.inbox.nats.state).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while (stored := await app.inbox.load_state(WA_ID)) is not None and stored.data:
                assert loop.time() < deadline, f"the bot still sees {stored}"
                await asyncio.sleep(0.05)
            out = await cli("state", "clear", WA_ID, "--inbox", url)
            assert out == f"conversation {WA_ID} had no state\n"

            # The bot's next event of the conversation starts from the cleared state.
            await app.feed(text_callback("Bo", wa_id=WA_ID))
            await asyncio.wait_for(app.dispatcher.wait_idle(), 10)
            assert found[-1] is None


async def test_state_commands_refuse_a_memory_inbox() -> None:
    out = await cli("state", "show", WA_ID, "--inbox", "memory", code=2)
    assert "memory inbox lives inside the bot's process" in out
