"""A bot that fetches what it is sent: a voice note or an image in, its size and sha256 out.

It stands where a transcription or OCR bot would call its model: the file is streamed from
the provider (never held whole in memory), hashed on the way, and the answer says what
arrived. Documents are saved to ``received/`` instead. Run it (after ``pip install -e .``)::

    whizrouter run examples/media_bot.py:app --port 8080

with WHIZARD_API_KEY and WHIZARD_BASE_URL set (and WHIZARD_API_SHAPE=cloud for a Cloud
number, which also shows "typing…" while the bot works).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from whizrouter import (
    Context,
    DocumentMessage,
    ImageMessage,
    MediaTooLargeError,
    VoiceMessage,
    WhizRouter,
)

#: Where documents are saved.
RECEIVED = Path("received")
#: The largest voice note or image this bot reads.
MAX_BYTES = 16 * 1024 * 1024

app = WhizRouter(plugins=["mark-read"])


@app.on_message(type=["voice", "image"])
async def fingerprint(message: VoiceMessage | ImageMessage, ctx: Context) -> None:
    """Stream the file, hash it on the way, and answer with what arrived."""
    digest = hashlib.sha256()
    try:
        async with ctx.typing(), ctx.client.open_media(message, max_bytes=MAX_BYTES) as media:
            async for chunk in media:
                digest.update(chunk)  # a transcription or OCR model would read here
    except MediaTooLargeError:
        await ctx.reply(f"That {message.type} is larger than the {MAX_BYTES} bytes I read.")
        return
    kind = "voice note" if message.type == "voice" else "image"
    await ctx.reply(
        f"Got your {kind}: {media.received} bytes ({media.mime_type}), sha256 {digest.hexdigest()}"
    )


@app.on_message(type="document")
async def save(message: DocumentMessage, ctx: Context) -> None:
    """Save a document under its own name (the last one of a name wins)."""
    await asyncio.to_thread(RECEIVED.mkdir, exist_ok=True)
    name = Path(message.document.filename or message.document.id).name
    info = await ctx.save_media(message, RECEIVED / name)
    await ctx.reply(f"Saved {name}: {info.size} bytes, sha256 {info.sha256}")
