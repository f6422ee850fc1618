"""Tests of the sign-up bot, written the way a bot author would: with ``bot_tester``."""

from __future__ import annotations

from examples.signup_bot import Signup, app
from whizrouter.testing import StartBot


async def test_the_whole_flow(bot_tester: StartBot) -> None:
    bot = await bot_tester(app)
    assert await bot.text("sign up") == ["Your name?"]
    assert await bot.state() == "Signup.name"
    assert await bot.text("Ann") == ["Your e-mail address?"]
    assert await bot.state() == Signup.email
    assert await bot.state_data() == {"name": "Ann", "email": ""}
    assert await bot.text("ann@example.com") == ["Welcome, Ann! We will write to ann@example.com."]
    assert await bot.state() is None
    assert await bot.state_data() == {}


async def test_a_bad_address_keeps_the_step(bot_tester: StartBot) -> None:
    bot = await bot_tester(app)
    await bot.set_state(Signup.email, {"name": "Bo"})
    assert await bot.text("not an address") == [
        "That does not look like an e-mail address; try again."
    ]
    assert await bot.state() == Signup.email
    assert await bot.text("bo@example.com") == ["Welcome, Bo! We will write to bo@example.com."]


async def test_cancel_from_any_step_and_outside_the_flow(bot_tester: StartBot) -> None:
    bot = await bot_tester(app)
    assert await bot.text("cancel") == ['Write "sign up" to create an account.']
    await bot.text("sign up")
    assert await bot.text("cancel") == ["Sign-up cancelled."]
    assert await bot.state() is None


async def test_conversations_have_their_own_state(bot_tester: StartBot) -> None:
    bot = await bot_tester(app)
    await bot.text("sign up", wa_id="111")
    assert await bot.text("hello", wa_id="222") == ['Write "sign up" to create an account.']
    assert await bot.text("Cy", wa_id="111") == ["Your e-mail address?"]
    assert await bot.state("222") is None
