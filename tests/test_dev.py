"""``whizrouter dev`` as a real process: the console provider prints the reply, and an edit
of the bot's file changes the reply without a restart by hand."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.process import ROOT, CommandProcess
from whizrouter.dev import child_command, watched_paths
from whizrouter.testing import free_port, text_callback

#: The environment of a laptop with no provider account.
NO_KEY = {"WHIZARD_API_KEY": "", "WHIZROUTER_INBOX": "", "WHIZROUTER_WEBHOOK_USER": ""}


async def post_text(url: str, text: str) -> int | None:
    """Post a text callback; the status, or None when nothing listens (a reload)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=text_callback(text)) as response,
        ):
            return response.status
    except aiohttp.ClientError:
        return None


async def send_until_printed(dev: CommandProcess, url: str, text: str, expected: str) -> None:
    """Post ``text`` until the console prints ``expected``.

    Around a reload a post may find no bot (wait for the next one to listen) or the old one,
    still draining, which answers with the old code (post again).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        mark = len(dev.lines)
        status = await post_text(url, text)
        try:
            if status == 200:
                await dev.wait_for_line(expected, timeout=5, after=mark)
                return
            await dev.wait_for_line("listening on", timeout=5, after=mark)
        except AssertionError:
            if loop.time() > deadline:
                raise


@pytest.mark.slow
async def test_dev_prints_the_reply_and_reloads_on_an_edit(tmp_path: Path) -> None:
    bot = tmp_path / "bot.py"
    shutil.copy(ROOT / "examples" / "echo_bot.py", bot)
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhook"
    dev = CommandProcess("dev", "bot.py:app", "--port", str(port), env=NO_KEY, cwd=tmp_path)
    await dev.start()
    try:
        await dev.wait_for_line("listening on")
        # The README's second command; with no key, the console provider prints the reply.
        sent = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "whizrouter", "send", "--text", "hi", "--url", url),
            stdout=asyncio.subprocess.PIPE,
        )
        assert (await sent.communicate())[0].startswith(b"200 OK")
        await dev.wait_for_line("send text to 15551230001: 'echo: hi'")
        await dev.wait_for_line("mark read wamid.TEST")  # the mark-read plugin, after it
        assert "inbox: memory" in dev.output
        started = asyncio.get_running_loop().time()
        bot.write_text(bot.read_text().replace('"echo: "', '"changed: "'))
        await dev.wait_for_line("bot.py changed: restarting the bot")
        await send_until_printed(dev, url, "hi", "send text to 15551230001: 'changed: hi'")
        assert asyncio.get_running_loop().time() - started < 15, dev.output
        # A file that no longer imports leaves the reloader waiting for the next save.
        mark = len(dev.lines)
        bot.write_text("raise RuntimeError('half-written')\n")
        await dev.wait_for_line("the bot stopped (exit code", after=mark)
        shutil.copy(ROOT / "examples" / "echo_bot.py", bot)
        await send_until_printed(dev, url, "back", "send text to 15551230001: 'echo: back'")
    finally:
        code = await dev.stop()
    assert code == 0, dev.output


def test_the_child_is_the_same_command_without_the_reloader() -> None:
    args = argparse.Namespace(
        target="bot.py:app", host="127.0.0.1", port=8081, inbox=None, log_level="DEBUG"
    )
    command = child_command(args)
    assert command[1:] == [
        "-m",
        "whizrouter",
        "--log-level",
        "DEBUG",
        "dev",
        "--no-reload",
        "bot.py:app",
        "--host",
        "127.0.0.1",
        "--port",
        "8081",
    ]
    assert watched_paths("bots/echo.py:app", []) == [Path("bots").resolve()]
    assert watched_paths("bot:app", ["lib"]) == [Path(os.getcwd()), Path("lib").resolve()]
