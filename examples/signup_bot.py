"""A sign-up flow in three steps, whose progress survives restarts, retries and crashes.

Run it with ``whizrouter run examples/signup_bot.py:app``; its tests are in
``examples/tests/test_signup_bot.py``. Each step is a handler routed by the conversation's
state (``state=``); the state and its data are committed with each message's acknowledgement.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from whizrouter import Context, State, StateGroup, TextMessage, WhizRouter

app = WhizRouter()
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Signup(StateGroup):
    """The steps of the flow: "Signup.name", then "Signup.email"."""

    name = State()
    email = State()


class Profile(BaseModel):
    """What the flow has gathered so far."""

    name: str = ""
    email: str = ""


@app.on_message(type="text", text="cancel", state=Signup)
async def cancel(message: TextMessage, ctx: Context) -> None:
    """Leave the flow from any of its steps."""
    await ctx.state.clear()
    await ctx.reply("Sign-up cancelled.")


@app.on_message(type="text", text="sign up", state=None)
async def begin(message: TextMessage, ctx: Context) -> None:
    """Start the flow."""
    await ctx.state.set(Signup.name)
    await ctx.reply("Your name?")


@app.on_message(type="text", state=Signup.name)
async def got_name(message: TextMessage, ctx: Context) -> None:
    """Keep the name, ask for the e-mail address."""
    await ctx.state.save(Profile(name=message.text.body.strip()))
    await ctx.state.set(Signup.email)
    await ctx.reply("Your e-mail address?")


@app.on_message(type="text", state=Signup.email)
async def got_email(message: TextMessage, ctx: Context) -> None:
    """Check the address, then finish."""
    address = message.text.body.strip()
    if not EMAIL.match(address):
        await ctx.reply("That does not look like an e-mail address; try again.")
        return
    profile = await ctx.state.load(Profile)
    await ctx.state.clear()
    await ctx.reply(f"Welcome, {profile.name}! We will write to {address}.")


@app.on_message(type="text")
async def menu(message: TextMessage, ctx: Context) -> None:
    """Anything else, outside the flow."""
    await ctx.reply('Write "sign up" to create an account.')
