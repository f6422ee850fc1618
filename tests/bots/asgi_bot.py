"""A bot served as an ASGI application (``uvicorn tests.bots.asgi_bot:asgi``) for process
tests: answers 'started <body>', works for a while, then answers 'done <body>'."""

from __future__ import annotations

import asyncio
import os

from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.asgi import asgi_app

app = WhizRouter(read_timeout=float(os.environ.get("ASGI_BOT_READ_TIMEOUT", "10")))
WORK_SECONDS = float(os.environ.get("ASGI_BOT_WORK_SECONDS", "0.5"))


@app.on_message(type="text")
async def slow(message: TextMessage, ctx: Context) -> None:
    """Reply 'started <body>', work, then reply 'done <body>'."""
    await ctx.reply("started " + message.text.body)
    await asyncio.sleep(WORK_SECONDS)
    await ctx.reply("done " + message.text.body)


asgi = asgi_app(app)
