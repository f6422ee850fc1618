"""A bot for order tests: replies 'handled <message id> <body>' for every text.

Each handler first awaits ``ORDER_BOT_WORK_SECONDS`` (5 ms by default), so events of many
conversations are in flight at once, and a test reading the fake provider's sends in arrival
order sees the order in which each conversation's events were handled.
"""

from __future__ import annotations

import asyncio
import os

from whizrouter import Context, TextMessage, WhizRouter

app = WhizRouter()
WORK_SECONDS = float(os.environ.get("ORDER_BOT_WORK_SECONDS", "0.005"))


@app.on_message(type="text")
async def record(message: TextMessage, ctx: Context) -> None:
    """Work briefly, then report the message id and body back through the provider."""
    await asyncio.sleep(WORK_SECONDS)
    await ctx.reply(f"handled {message.id} {message.text.body}")
