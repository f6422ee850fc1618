"""Tests of the media bot, written the way a bot author would: with ``bot_tester`` and media
the fake provider holds."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from examples import media_bot
from examples.media_bot import app
from whizrouter.defaults import ApiShape
from whizrouter.testing import StartBot, media_callback


@pytest.mark.parametrize("shape", ["onprem", "cloud"])
async def test_a_voice_note_is_answered_with_its_size_and_sha256(
    bot_tester: StartBot, shape: ApiShape
) -> None:
    bot = await bot_tester(app, shape=shape)
    voice = os.urandom(48_000)
    media_id = bot.provider.add_media(voice, "audio/ogg")
    await bot.send(media_callback("voice", media_id, data=voice, shape=shape))
    digest = hashlib.sha256(voice).hexdigest()
    assert bot.replies == [f"Got your voice note: 48000 bytes (audio/ogg), sha256 {digest}"]
    assert len(bot.provider.marked_read) == 1
    assert len(bot.provider.typing) == (1 if shape == "cloud" else 0)


async def test_an_image_is_answered_with_its_size_and_sha256(bot_tester: StartBot) -> None:
    bot = await bot_tester(app)
    image = b"\xff\xd8\xff" + os.urandom(5000)
    media_id = bot.provider.add_media(image, "image/jpeg")
    await bot.send(media_callback("image", media_id, data=image, mime_type="image/jpeg"))
    digest = hashlib.sha256(image).hexdigest()
    assert bot.replies == [f"Got your image: 5003 bytes (image/jpeg), sha256 {digest}"]


async def test_an_image_over_the_cap_is_refused_politely(
    bot_tester: StartBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media_bot, "MAX_BYTES", 1000)
    bot = await bot_tester(app)
    media_id = bot.provider.add_media(os.urandom(2000), "image/jpeg")
    await bot.send(media_callback("image", media_id))
    assert bot.replies == ["That image is larger than the 1000 bytes I read."]


@pytest.mark.parametrize("shape", ["onprem", "cloud"])
async def test_a_document_is_saved_under_its_name(
    bot_tester: StartBot, shape: ApiShape, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bot = await bot_tester(app, shape=shape)
    pdf = b"%PDF-1.7 " + os.urandom(10_000)
    media_id = bot.provider.add_media(pdf, "application/pdf")
    body = media_callback("document", media_id, data=pdf, filename="../receipt.pdf", shape=shape)
    await bot.send(body)
    digest = hashlib.sha256(pdf).hexdigest()
    assert bot.replies == [f"Saved receipt.pdf: {len(pdf)} bytes, sha256 {digest}"]
    assert (tmp_path / "received" / "receipt.pdf").read_bytes() == pdf
