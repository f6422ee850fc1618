"""The smallest useful bot: echo every text, mark it read, log delivery failures.

Run it (after ``pip install -e .``)::

    whizrouter run examples/echo_bot.py:app --port 8080

It starts without a provider key; set WHIZARD_API_KEY and WHIZARD_BASE_URL so replies and
read marks reach the provider.
"""

from __future__ import annotations

import logging

from whizrouter import Context, Status, TextMessage, WhizRouter

log = logging.getLogger("examples.echo_bot")

app = WhizRouter(plugins=["mark-read"])


@app.on_message(type="text")
async def echo(message: TextMessage, ctx: Context) -> None:
    """Send the text back to whoever wrote it."""
    await ctx.reply("echo: " + message.text.body)


@app.on_status(status="failed")
async def delivery_failed(status: Status, ctx: Context) -> None:
    """Log why a message we sent could not be delivered."""
    reasons = ", ".join(f"{e.code} {e.title}" for e in status.errors) or "no reason given"
    log.warning("message %s to %s failed: %s", status.id, status.recipient_id, reasons)
