"""A bot for the send journal's process tests: every handler replies, then something fails.

- ``flaky``: replies ``handled <message id>``, then raises until the file named by
  ``JOURNAL_BOT_FLAG`` exists (no retries: the event is dead at once); with the file, it
  replies ``done <message id>`` and succeeds;
- ``retry``: replies ``handled <message id>``, then raises on its first two attempts (two
  quick retries), then replies ``done <message id>``;
- anything else: replies ``handled <message id>``, then works ``JOURNAL_BOT_WORK_SECONDS``
  (0.3) before it returns, so a kill finds replied events unacknowledged.

``JOURNAL_BOT_OFF=1`` runs it with ``send_journal=False``.
"""

from __future__ import annotations

import asyncio
import os

import anyio

from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter

app = WhizRouter(
    retry=RetryPolicy(attempts=0), send_journal=os.environ.get("JOURNAL_BOT_OFF") != "1"
)
WORK_SECONDS = float(os.environ.get("JOURNAL_BOT_WORK_SECONDS", "0.3"))
FLAG = os.environ.get("JOURNAL_BOT_FLAG", "journal-bot.flag")


@app.on_message(
    text="retry", retry=RetryPolicy(attempts=2, base=0.01, max_delay=0.01, max_total=5.0)
)
async def reply_then_fail_twice(message: TextMessage, ctx: Context) -> None:
    """Reply, fail on the first two attempts, then finish."""
    await ctx.reply(f"handled {message.id}")
    if ctx.attempt <= 2:
        raise RuntimeError(f"failing attempt {ctx.attempt} on purpose")
    await ctx.reply(f"done {message.id}")


@app.on_message(type="text")
async def reply_then_work(message: TextMessage, ctx: Context) -> None:
    """Reply, then fail or work, by the text."""
    await ctx.reply(f"handled {message.id}")
    if message.text.body == "flaky":
        if not await anyio.Path(FLAG).exists():
            raise RuntimeError("the flag file is missing")
        await ctx.reply(f"done {message.id}")
        return
    await asyncio.sleep(WORK_SECONDS)
