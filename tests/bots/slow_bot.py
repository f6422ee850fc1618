"""A bot for process tests: says when it starts a handler, then works for a while."""

from __future__ import annotations

import asyncio
import os

from whizrouter import Context, TextMessage, WhizRouter

app = WhizRouter()
WORK_SECONDS = float(os.environ.get("SLOW_BOT_WORK_SECONDS", "1.0"))


@app.on_message(type="text")
async def slow(message: TextMessage, ctx: Context) -> None:
    """Reply 'started <body>', work, then reply 'done <body>'."""
    await ctx.reply("started " + message.text.body)
    await asyncio.sleep(WORK_SECONDS)
    await ctx.reply("done " + message.text.body)
