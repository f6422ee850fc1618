"""``whizrouter inbox stats`` and ``whizrouter dead list|replay|drop`` against a running bot."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import nats
import nats.js.errors
import pytest

from tests.natsserver import nats_url, unique_stream
from tests.process import ROOT
from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.testing import FakeProvider, text_callback

__all__ = ["nats_url"]  # the fixture, imported so pytest finds it


async def cli(*args: str, code: int = 0) -> str:
    """Run the command as an operator would, in its own process; return what it printed.

    ``code`` is the exit code expected; stderr (where errors go) is returned after stdout.
    """
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
    assert process.returncode == code, (out + err).decode()
    return (out + err).decode()


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

            # Asking again, or for an id that never was, is an error that says where to look.
            out = await cli("dead", "replay", first[0], "--inbox", url, code=1)
            assert "replayed 0" in out
            assert "that id is not a dead letter" in out
            assert "whizrouter dead list" in out

            second = rows["m:wamid.cli-2"][0]
            out = await cli("dead", "list", "--limit", "0", "--inbox", url, code=2)
            assert "--limit must be a positive whole number" in out
            assert "dropped 1" in await cli("dead", "drop", second, "--inbox", url)
            out = await cli("dead", "drop", second, "9999", "999", "--inbox", url, code=1)
            assert "dropped 0" in out
            assert "3 of the 3 ids given are not dead letters" in out
            assert "no dead letters" in await cli("dead", "list", "--inbox", url)


async def test_dead_list_says_when_the_limit_cut_it_short(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    app = WhizRouter(retry=RetryPolicy(attempts=0))

    @app.on_message(type="text")
    async def handler(message: TextMessage, ctx: Context) -> None:
        raise ValueError("broken")

    async with FakeProvider() as provider:
        app.replace_parts(client=provider.client(), inbox=inbox_from_url(url))
        async with app:
            for number in range(3):
                await app.feed(text_callback("hi", message_id=f"wamid.limit-{number}"))
            assert app.dispatcher is not None
            await app.dispatcher.wait_idle()
    out = await cli("dead", "list", "--limit", "2", "--inbox", url)
    assert len(out.splitlines()) == 1 + 2 + 1
    assert "more dead letters than these 2; raise --limit" in out
    out = await cli("dead", "replay", "1", "--all", "--inbox", url, code=2)
    assert "give dead letter ids or --all, not both" in out
    out = await cli("dead", "replay", "--inbox", url, code=2)
    assert "name the dead letter ids to replay" in out and "--all to replay every one" in out
    # --log-level also works after the command.
    out = await cli("dead", "list", "--limit", "5", "--inbox", url, "--log-level", "DEBUG")
    assert "broken" in out


async def test_inspecting_an_inbox_that_is_not_there_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "inbox.db"
    (tmp_path / "elsewhere").mkdir()
    for command in (("inbox", "stats"), ("dead", "list")):
        out = await cli(*command, "--inbox", f"sqlite:///{missing}", code=2)
        # A plain answer at the prompt, without a log timestamp.
        assert out.startswith(f"whizrouter: ERROR: no inbox file at {missing}"), out
        assert "run this command in the directory the bot runs in" in out
    assert not missing.exists()
    out = await cli("inbox", "stats", "--inbox", "memory", code=2)
    assert "a memory inbox lives inside the bot's process" in out
    out = await cli("inbox", "stats", "--inbox", "README.md", code=2)
    assert "--inbox 'README.md'" in out


async def test_inspecting_a_nats_stream_that_is_not_there_creates_nothing(nats_url: str) -> None:
    stream = unique_stream()
    for command in (("inbox", "stats"), ("dead", "list")):
        out = await cli(*command, "--inbox", f"{nats_url}?stream={stream}", code=1)
        assert f"there is no NATS stream {stream}" in out, out
        assert "Check stream= in the inbox URL" in out
    connection = await nats.connect(nats_url)
    try:
        with pytest.raises(nats.js.errors.NotFoundError):
            await connection.jetstream().stream_info(stream)
    finally:
        await connection.close()


@pytest.mark.parametrize(
    "url",
    [
        "nats://alice:S3cretPW-xyz@127.0.0.1:1?partitions=abc",
        "nats://alice:S3c#retPW-xyz@127.0.0.1:1",  # the parser's error quotes a piece of it
    ],
)
async def test_an_inbox_url_error_never_shows_its_password(url: str) -> None:
    out = await cli("inbox", "stats", "--inbox", url, code=2)
    assert "***@127.0.0.1" in out
    for piece in ("S3c", "retPW", "xyz", "alice:"):
        assert piece not in out, out
