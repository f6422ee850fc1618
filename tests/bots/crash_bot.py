"""A bot for crash tests: replies 'handled <message id> <attempt>' for every text.

``CRASH_BOT_WORK_SECONDS`` makes each handler take that long before it replies, so events
are in flight when the test kills the process.
"""

from __future__ import annotations

import asyncio
import os

from whizrouter import Context, TextMessage, WhizRouter

app = WhizRouter()
WORK_SECONDS = float(os.environ.get("CRASH_BOT_WORK_SECONDS", "0"))


@app.on_message(type="text")
async def record(message: TextMessage, ctx: Context) -> None:
    """Work for a while, then report the message id back through the provider."""
    if WORK_SECONDS:
        await asyncio.sleep(WORK_SECONDS)
    await ctx.reply(f"handled {message.id} {ctx.attempt}")
