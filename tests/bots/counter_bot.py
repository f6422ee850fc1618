"""A bot for the state crash tests: counts each conversation's messages in ``ctx.state``.

Replies ``count <n>`` for every text; ``CRASH_BOT_WORK_SECONDS`` makes each handler take that
long after it read the state, so kills land while state changes are in flight.
"""

from __future__ import annotations

import asyncio
import os

from whizrouter import Context, TextMessage, WhizRouter

app = WhizRouter()
WORK_SECONDS = float(os.environ.get("CRASH_BOT_WORK_SECONDS", "0"))


@app.on_message(type="text")
async def count(message: TextMessage, ctx: Context) -> None:
    """Add one to the conversation's counter."""
    data = await ctx.state.data()
    counted = int(data.get("count", 0)) + 1
    if WORK_SECONDS:
        await asyncio.sleep(WORK_SECONDS)
    await ctx.state.update(count=counted)
    await ctx.reply(f"count {counted}")
