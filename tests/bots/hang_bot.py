"""A bot for process tests: a handler that never ends on "hang", one that always fails on
"fail" (retried once, then dead), a quick one otherwise."""

from __future__ import annotations

import asyncio
import os

from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter

app = WhizRouter(retry=RetryPolicy(attempts=1, base=0.05, jitter=False))


@app.on_message(text="hang", timeout=float(os.environ.get("HANG_BOT_TIMEOUT", "30")))
async def hang(message: TextMessage, ctx: Context) -> None:
    """Reply 'started hang', then wait for ever."""
    await ctx.reply("started hang")
    await asyncio.Event().wait()


@app.on_message(text="fail")
async def fail(message: TextMessage, ctx: Context) -> None:
    """Fail, every time."""
    raise RuntimeError("this handler always fails")


@app.on_message(type="text")
async def quick(message: TextMessage, ctx: Context) -> None:
    """Reply 'done <body>'."""
    await ctx.reply("done " + message.text.body)
