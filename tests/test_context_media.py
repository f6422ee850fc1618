"""A bot's media shortcuts, as a handler uses them: ``ctx.download`` and ``ctx.save_media`` of
what the customer sent, and ``ctx.reply_*(path=...)`` that upload, then send."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from whizrouter import (
    Context,
    DocumentMessage,
    ImageMessage,
    MessageValidationError,
    TextMessage,
    VoiceMessage,
    WhizRouter,
)
from whizrouter.defaults import ApiShape
from whizrouter.testing import StartBot, media_callback

SHAPES: list[ApiShape] = ["onprem", "cloud"]


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_handler_downloads_a_voice_note_and_an_image(
    bot_tester: StartBot, shape: ApiShape
) -> None:
    app = WhizRouter()

    @app.on_message(type=["voice", "image"])
    async def got(message: VoiceMessage | ImageMessage, ctx: Context) -> None:
        data = await ctx.download(message)
        await ctx.reply(f"{message.type} {len(data)} {hashlib.sha256(data).hexdigest()}")

    bot = await bot_tester(app, shape=shape)
    voice = os.urandom(20_000)
    voice_id = bot.provider.add_media(voice, "audio/ogg; codecs=opus")
    await bot.send(media_callback("voice", voice_id, data=voice, shape=shape))
    image = os.urandom(3000)
    image_id = bot.provider.add_media(image, "image/jpeg")
    await bot.send(media_callback("image", image_id, data=image, shape=shape))
    assert bot.replies == [
        f"voice 20000 {hashlib.sha256(voice).hexdigest()}",
        f"image 3000 {hashlib.sha256(image).hexdigest()}",
    ]


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_handler_saves_a_document_where_it_says(
    bot_tester: StartBot, shape: ApiShape, tmp_path: Path
) -> None:
    app = WhizRouter()

    @app.on_message(type="document")
    async def receipt(message: DocumentMessage, ctx: Context) -> None:
        info = await ctx.save_media(message.document, tmp_path / (message.document.filename or "x"))
        await ctx.reply(f"saved {info.size} bytes of {info.mime_type}")

    bot = await bot_tester(app, shape=shape)
    pdf = b"%PDF-1.7 receipt " * 500
    media_id = bot.provider.add_media(pdf, "application/pdf")
    body = media_callback("document", media_id, data=pdf, filename="receipt.pdf", shape=shape)
    await bot.send(body)
    assert bot.replies == [f"saved {len(pdf)} bytes of application/pdf"]
    assert (tmp_path / "receipt.pdf").read_bytes() == pdf


@pytest.mark.parametrize("shape", SHAPES)
async def test_reply_with_a_file_uploads_it_then_sends_it_by_id(
    bot_tester: StartBot, shape: ApiShape, tmp_path: Path
) -> None:
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.7 report")
    app = WhizRouter()

    @app.on_message(type="text")
    async def files(message: TextMessage, ctx: Context) -> None:
        await ctx.reply_image(path=chart, caption="your chart")
        await ctx.reply_document(path=report)

    bot = await bot_tester(app, shape=shape)
    await bot.text("files please")
    uploads = [c for c in bot.provider.calls if c.kind == "media_upload"]
    assert len(uploads) == 2
    image, document = [c.json for c in bot.provider.sent]
    assert image is not None and document is not None
    assert bot.provider.media[image["image"]["id"]].data == chart.read_bytes()
    assert image["image"]["caption"] == "your chart"
    assert document["document"]["filename"] == "report.pdf"
    assert bot.provider.media[document["document"]["id"]].mime_type == "application/pdf"


async def test_reply_with_a_file_too_large_for_its_kind_sends_nothing(
    bot_tester: StartBot, tmp_path: Path
) -> None:
    photo = tmp_path / "huge.jpg"
    photo.write_bytes(b"x" * (5 * 1024 * 1024 + 1))
    app = WhizRouter()
    errors: list[str] = []

    @app.on_message(type="text")
    async def send_photo(message: TextMessage, ctx: Context) -> None:
        try:
            await ctx.reply_image(path=photo)
        except MessageValidationError as exc:
            errors.append(str(exc))
            await ctx.reply("too big")

    bot = await bot_tester(app)
    assert await bot.text("photo") == ["too big"]
    assert "over the 5242880 bytes WhatsApp allows" in errors[0]
    assert [c.kind for c in bot.provider.calls] == ["send"]
