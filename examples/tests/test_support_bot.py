"""Tests of the support bot, written the way a bot author would: with ``bot_tester``."""

from __future__ import annotations

from examples.support_bot import app
from whizrouter.testing import StartBot, message_callback


async def test_greets_by_name_with_the_menu(bot_tester: StartBot) -> None:
    bot = await bot_tester(app)
    calls = await bot.send(message_callback("text", {"body": "hello"}, name="Ana"))
    [call] = [c for c in calls if c.kind == "send"]
    assert call.json is not None
    assert call.json["interactive"]["body"]["text"] == "Hi Ana! How can I help?"
    assert len(call.json["interactive"]["action"]["buttons"]) == 3


async def test_order_numbers_get_a_status(bot_tester: StartBot) -> None:
    bot = await bot_tester(app)
    assert await bot.text("order 1234") == ["Order 1234 is on its way."]


async def test_menu_choice_is_answered_and_marked_read(bot_tester: StartBot) -> None:
    bot = await bot_tester(app)
    body = message_callback(
        "interactive",
        {"type": "button_reply", "button_reply": {"id": "returns", "title": "Returns"}},
    )
    await bot.send(body)
    assert bot.replies == ["You can return anything within 30 days: https://example.com/returns"]
    assert bot.provider.marked_read == [body["messages"][0]["id"]]
