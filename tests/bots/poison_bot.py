"""A bot for crash tests of attempt counting, with no retries (``RetryPolicy(attempts=0)``).

- ``poison``: the handler kills its own process with SIGKILL, every time (a crash loop);
- ``slow ...``: the handler replies ``started <message id> <attempt>``, then waits
  ``POISON_BOT_SLOW_SECONDS`` before its last reply;
- anything else: replies at once.

The last reply is always ``handled <message id> <attempt>``.
"""

from __future__ import annotations

import asyncio
import os
import signal

from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter

app = WhizRouter(retry=RetryPolicy(attempts=0))
SLOW_SECONDS = float(os.environ.get("POISON_BOT_SLOW_SECONDS", "0"))


@app.on_message(type="text")
async def handle(message: TextMessage, ctx: Context) -> None:
    """Crash, wait or answer, by the text."""
    if message.text.body == "poison":
        os.kill(os.getpid(), signal.SIGKILL)
    if message.text.body.startswith("slow"):
        await ctx.reply(f"started {message.id} {ctx.attempt}")
        await asyncio.sleep(SLOW_SECONDS)
    await ctx.reply(f"handled {message.id} {ctx.attempt}")
