"""A small support desk: a menu of reply buttons, routed by topic, with a human hand-off.

Run it with ``whizrouter run examples/support_bot.py:app``; its tests are in
``examples/tests/test_support_bot.py``, written with the ``bot_tester`` pytest fixture.
"""

from __future__ import annotations

import logging
import re

from whizrouter import (
    Context,
    ImageMessage,
    InteractiveMessage,
    Router,
    Status,
    TextMessage,
    WhizRouter,
)

log = logging.getLogger("examples.support_bot")

app = WhizRouter(plugins=["mark-read"])
menu = Router(name="menu")
MENU_BUTTONS = [("orders", "My orders"), ("returns", "Returns"), ("agent", "Talk to a human")]
ANSWERS = {
    "orders": "Send me your order number, like: order 1234",
    "returns": "You can return anything within 30 days: https://example.com/returns",
    "agent": "A colleague will write to you shortly.",
}


@menu.on_message(type="interactive")
async def picked(message: InteractiveMessage, ctx: Context) -> None:
    """Answer the topic the customer picked from the menu."""
    answer = ANSWERS.get(message.reply_id or "", "Sorry, I did not get that.")
    await ctx.reply(answer)


@app.on_message(type="text", text=re.compile(r"^order\s+(\d+)$", re.IGNORECASE))
async def order_status(message: TextMessage, ctx: Context) -> None:
    """Look an order up (here: pretend) and quote the question in the answer."""
    number = message.text.body.split()[-1]
    await ctx.reply(f"Order {number} is on its way.", quote=True)


@app.on_message(type="text")
async def greet(message: TextMessage, ctx: Context) -> None:
    """Anything else: greet by name and show the menu."""
    name = ctx.contact.name if ctx.contact and ctx.contact.name else "there"
    await ctx.reply_buttons(f"Hi {name}! How can I help?", MENU_BUTTONS)


@app.on_message(type="image")
async def thanks_for_the_picture(message: ImageMessage, ctx: Context) -> None:
    """React to pictures so the customer knows they arrived."""
    await ctx.react("👍")


@app.on_status(status="failed")
async def undeliverable(status: Status, ctx: Context) -> None:
    """A reply could not be delivered: log the provider's reason."""
    for error in status.errors:
        log.warning(
            "message %s to %s failed: %s %s",
            status.id,
            status.recipient_id,
            error.code,
            error.title,
        )


app.include_router(menu)
