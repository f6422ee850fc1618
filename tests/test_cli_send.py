"""``whizrouter send``: a real command against a real bot process, with the bot's auth."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson
import pytest

from tests.process import BotProcess
from whizrouter import Context, ImageMessage, InteractiveMessage, Status, WhizRouter
from whizrouter.cli import build_parser, main
from whizrouter.cli_send import build_body
from whizrouter.defaults import ApiShape
from whizrouter.testing import FakeProvider, StartBot

AUTH = {"WHIZROUTER_WEBHOOK_USER": "hook", "WHIZROUTER_WEBHOOK_PASSWORD": "s3cret-pass"}


@pytest.mark.slow
async def test_send_text_is_answered_200_and_handled() -> None:
    async with FakeProvider(api_key="k1") as fake:
        env = {"WHIZARD_API_KEY": "k1", "WHIZARD_BASE_URL": fake.base_url, **AUTH}
        bot = BotProcess("examples/echo_bot.py:app", {**env, "WHIZROUTER_INBOX": "memory"})
        await bot.start()
        try:
            # The same environment as the bot: the command finds the webhook's credentials.
            sent = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "whizrouter", "send", "--text", "hi", "--from", "15551230009"),
                *("--url", bot.url + "/webhook"),
                env={**bot.env},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out = (await sent.communicate())[0].decode()
            assert sent.returncode == 0, out
            assert out.startswith("200 OK"), out
            (reply,) = await fake.wait_for(lambda call: call.kind == "send")
            assert reply.json["to"] == "15551230009"
            assert reply.json["text"]["body"] == "echo: hi"
            # Without the credentials the bot refuses it, and the command says so.
            refused = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "whizrouter", "send", "--text", "hi", "--url", bot.url + "/webhook"),
                env={**bot.env, "WHIZROUTER_WEBHOOK_USER": "", "WHIZROUTER_WEBHOOK_PASSWORD": ""},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out = (await refused.communicate())[0].decode()
            assert refused.returncode == 1
            assert out.startswith("401"), out
        finally:
            await bot.stop()


def test_no_bot_listening_names_the_way_out(caplog: pytest.LogCaptureFixture) -> None:
    code = main(["send", "--text", "hi", "--url", "http://127.0.0.1:9/webhook"])
    assert code == 1
    assert "start one with `whizrouter dev bot.py:app`" in caplog.text


def args_of(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["send", *argv])


@pytest.mark.parametrize("shape", ["onprem", "cloud"])
async def test_each_kind_of_callback_reaches_its_handler(
    bot_tester: StartBot, shape: ApiShape
) -> None:
    app = WhizRouter()
    seen: list[str] = []

    @app.on_message(type="image")
    async def image(message: ImageMessage, ctx: Context) -> None:
        seen.append(f"image {message.image.id} {message.image.caption}")

    @app.on_message(type="interactive")
    async def reply(message: InteractiveMessage, ctx: Context) -> None:
        seen.append(f"{message.interactive.type} {message.reply_id} from {message.from_}")

    @app.on_status(status="delivered")
    async def delivered(status: Status, ctx: Context) -> None:
        seen.append(f"delivered {status.id} to {status.recipient_id}")

    bot = await bot_tester(app, shape=shape)
    for argv in [
        ("--image", "media-7", "--caption", "cat"),
        ("--button-reply", "yes", "--from", "15550000002"),
        ("--list-reply", "row-2", "--title", "Row two"),
        ("--status", "delivered", "--id", "wamid.fake-3"),
    ]:
        await bot.send(build_body(args_of(*argv), shape))
    assert seen == [
        "image media-7 cat",
        "button_reply yes from 15550000002",
        "list_reply row-2 from 15551230001",
        "delivered wamid.fake-3 to 15551230001",
    ]
    body = orjson.loads(build_body(args_of("--text", "x"), shape))
    assert ("object" in body) == (shape == "cloud")


def test_a_status_needs_its_id(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["send", "--status", "read"]) == 1
    assert "--status needs --id" in caplog.text


def test_send_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("send", "dev", "fake-provider", "new"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: whizrouter {command}" in capsys.readouterr().out
