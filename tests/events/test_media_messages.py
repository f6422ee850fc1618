"""Media messages in both shapes; voice notes normalize to ``VoiceMessage``."""

from __future__ import annotations

import pytest

from tests.events.samples import BASE, message, one
from whizrouter.events import (
    AudioMessage,
    DocumentMessage,
    ImageMessage,
    StickerMessage,
    VideoMessage,
    VoiceMessage,
)


def test_image_both_shapes() -> None:
    onprem = one("onprem/image.json", ImageMessage)
    assert onprem.image.id == "0f6c1a52-3b7e-4d19-8e2a-6a4f9d1c3b70"
    assert onprem.image.caption == "This is the broken handle"
    assert onprem.image.mime_type == "image/jpeg"
    cloud = one("cloud/image_with_url.json", ImageMessage)
    assert cloud.image.id == "65463453"
    assert cloud.image.caption is None
    assert cloud.image.url is not None
    assert cloud.image.url.startswith("https://lookaside.fbsbx.com/")


def test_video_frequently_forwarded() -> None:
    msg = one("onprem/video.json", VideoMessage)
    assert msg.video.id == "a3d9e1f0-6b2c-4c57-9d80-1e2f3a4b5c6d"
    assert msg.context is not None
    assert msg.context.frequently_forwarded is True


def test_audio_is_not_voice() -> None:
    msg = one("onprem/audio.json", AudioMessage)
    assert msg.type == "audio"
    assert msg.audio.mime_type == "audio/mpeg"


@pytest.mark.parametrize(
    ("name", "media_id"),
    [
        ("onprem/voice.json", "2b9c8d7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e"),
        ("cloud/voice.json", "1234567890987654321"),
    ],
)
def test_voice_normalized_in_both_shapes(name: str, media_id: str) -> None:
    msg = one(name, VoiceMessage)
    assert msg.type == "voice"
    assert msg.voice.id == media_id
    assert msg.voice.mime_type == "audio/ogg; codecs=opus"


def test_cloud_audio_without_voice_flag_stays_audio() -> None:
    msg = message({**BASE, "type": "audio", "audio": {"id": "1", "voice": False}})
    assert isinstance(msg, AudioMessage)
    assert msg.type == "audio"


def test_document() -> None:
    msg = one("onprem/document.json", DocumentMessage)
    assert msg.document.filename == "invoice-0042.pdf"
    assert msg.document.caption == "Invoice for May"
    assert msg.document.id == "c4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70"


def test_sticker_pack_metadata() -> None:
    msg = one("onprem/sticker.json", StickerMessage)
    metadata = msg.sticker.metadata
    assert metadata is not None
    assert metadata.sticker_pack_name == "Coffee Mood"
    assert metadata.emojis == ["☕", "😊"]
    assert metadata.is_first_party_sticker == 0
    dumped = msg.model_dump(by_alias=True)["sticker"]["metadata"]
    assert dumped["sticker-pack-publisher"] == "Example Studio"
