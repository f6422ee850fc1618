"""``whizrouter inbox stats`` and ``whizrouter dead list|replay|drop`` against a running bot."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.process import ROOT
from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.testing import FakeProvider, text_callback


async def cli(*args: str) -> str:
    """Run the command as an operator would, in its own process; return what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "whizrouter",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, (out + err).decode()
    return out.decode()


async def test_dead_letters_are_listed_replayed_and_dropped_while_the_bot_runs(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    broken = {"wamid.cli-1", "wamid.cli-2"}
    handled: list[str] = []
    replayed = asyncio.Event()
    app = WhizRouter(retry=RetryPolicy(attempts=0))

    @app.on_message(type="text")
    async def handler(message: TextMessage, ctx: Context) -> None:
        if message.id in broken:
            raise ValueError(f"cannot handle {message.text.body}")
        handled.append(message.id)
        replayed.set()

    async with FakeProvider() as provider:
        app.replace_parts(client=provider.client(), inbox=inbox_from_url(url))
        async with app:
            await app.feed(text_callback("first", message_id="wamid.cli-1", wa_id="15550000001"))
            await app.feed(text_callback("second", message_id="wamid.cli-2", wa_id="15550000002"))
            assert app.dispatcher is not None
            await app.dispatcher.wait_idle()

            listing = await cli("dead", "list", "--inbox", url)
            lines = listing.splitlines()
            assert lines[0].split("\t") == [
                "id",
                "event",
                "conversation",
                "handler",
                "attempts",
                "last error",
            ]
            rows = {line.split("\t")[1]: line.split("\t") for line in lines[1:]}
            assert set(rows) == {"m:wamid.cli-1", "m:wamid.cli-2"}
            first = rows["m:wamid.cli-1"]
            assert first[2] == "15550000001"
            assert first[3].endswith("handler")
            assert first[4] == "1"
            assert "ValueError: cannot handle first" in first[5]
            assert "dead: 2" in await cli("inbox", "stats", "--inbox", url)

            broken.clear()  # the fix is deployed
            out = await cli("dead", "replay", first[0], "--inbox", url)
            assert "replayed 1" in out
            await asyncio.wait_for(replayed.wait(), timeout=10)
            assert handled == ["wamid.cli-1"]

            second = rows["m:wamid.cli-2"][0]
            assert "dropped 1" in await cli("dead", "drop", second, "--inbox", url)
            assert "no dead letters" in await cli("dead", "list", "--inbox", url)
