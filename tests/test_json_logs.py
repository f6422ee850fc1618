"""JSON logs: every line of a real ``whizrouter run --log-format json`` with a failing handler
parses as JSON, lines about the event carry its fields, and no key or password appears."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.process import BotProcess
from whizrouter.json_logs import EVENT_FIELDS, JsonFormatter
from whizrouter.testing import FakeProvider, text_callback

PASSWORD = "pw-0f9e8d7c6b5a"


@pytest.mark.slow
async def test_every_line_of_a_run_with_a_failing_handler_is_json_with_the_event(
    tmp_path: Path,
) -> None:
    async with FakeProvider(api_key="key-1a2b3c4d5e6f") as provider:
        bot = BotProcess(
            "tests.bots.hang_bot:app",
            {
                "WHIZARD_API_KEY": provider.api_key,
                "WHIZARD_BASE_URL": provider.base_url,
                "WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}",
                "WHIZROUTER_WEBHOOK_USER": "meta",
                "WHIZROUTER_WEBHOOK_PASSWORD": PASSWORD,
            },
            args=("--log-format", "json"),
        )
        await bot.start()
        auth = {"Authorization": aiohttp.encode_basic_auth("meta", PASSWORD)}
        try:
            async with aiohttp.ClientSession(headers=auth) as session:
                failing = text_callback("fail", wa_id="31600000007", message_id="wamid.f")
                async with session.post(bot.url + "/webhook", json=failing) as response:
                    assert response.status == 200
                async with session.post(bot.url + "/webhook", data=b"{oops") as response:
                    assert response.status == 400
                deadline = time.monotonic() + 10
                while True:  # until the metrics show the dead letter
                    async with session.get(bot.url + "/metrics") as response:
                        if 'outcome="dead"' in await response.text():
                            break
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            bot.signal()
            assert await bot.wait() == 0
        finally:
            output = await bot.stop()
    lines = output.strip().splitlines()
    records = [orjson.loads(line) for line in lines]  # every line parses
    assert all({"ts", "level", "logger", "message"} <= record.keys() for record in records)
    about_event = [r for r in records if r.get("event") == "m:wamid.f"]
    retry, dead = (
        [r for r in about_event if "retrying" in r["message"]],
        [r for r in about_event if "is dead after" in r["message"]],
    )
    assert retry and retry[0]["attempt"] == 1 and retry[0]["conversation"] == "31600000007"
    assert retry[0]["handler"] == "tests.bots.hang_bot.fail"
    assert dead and dead[0]["level"] == "ERROR"
    failed = [r for r in about_event if "traceback" in r]
    assert failed and "RuntimeError: this handler always fails" in failed[0]["traceback"]
    assert failed[0]["attempt"] == 2
    assert any("answered 400" in r["message"] for r in records)
    assert "key-1a2b3c4d5e6f" not in output and PASSWORD not in output


def test_the_formatter_takes_explicit_fields_and_the_running_events() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    assert orjson.loads(formatter.format(record))["message"] == "hello you"
    token = EVENT_FIELDS.set(("m:1", "316", "bot.h", 3))
    try:
        line = orjson.loads(formatter.format(record))
    finally:
        EVENT_FIELDS.reset(token)
    assert (line["event"], line["conversation"], line["handler"], line["attempt"]) == (
        "m:1",
        "316",
        "bot.h",
        3,
    )
