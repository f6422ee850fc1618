"""The fake provider's media routes and the media callback builder, as a test reads them."""

from __future__ import annotations

import aiohttp
import pytest

from whizrouter import Context, MediaNotFoundError, VoiceMessage, WhizRouter
from whizrouter.client import KEY_HEADER
from whizrouter.testing import (
    FakeProvider,
    StartBot,
    graph_error_body,
    media_callback,
)
from whizrouter.testing.fake_media import META_MEDIA_HOST


async def test_the_cloud_media_object_points_at_meta_and_the_file_is_below_the_base_url() -> None:
    async with FakeProvider(shape="cloud") as fake, aiohttp.ClientSession() as http:
        media_id = fake.add_media(b"bytes", "image/png")
        headers = {KEY_HEADER: fake.api_key}
        async with http.get(f"{fake.base_url}/{media_id}", headers=headers) as answer:
            info = await answer.json()
        assert info["url"].startswith(META_MEDIA_HOST + "/whatsapp_business/attachments/?mid=")
        assert info["file_size"] == 5 and info["mime_type"] == "image/png"
        local = fake.base_url + info["url"].removeprefix(META_MEDIA_HOST)
        async with http.get(local, headers=headers) as answer:
            assert await answer.read() == b"bytes"
        async with http.get(local) as answer:
            assert answer.status == 401  # the key is needed here too
        form = aiohttp.FormData({"type": "image/png"})
        form.add_field("file", b"x", filename="x.png", content_type="image/png")
        async with http.post(f"{fake.base_url}/media", data=form, headers=headers) as answer:
            assert answer.status == 400  # no messaging_product
            assert "messaging_product" in (await answer.json())["error"]["message"]


async def test_a_graph_unknown_object_400_is_also_media_not_found() -> None:
    async with FakeProvider(shape="cloud") as fake, fake.client() as client:
        message = "Unsupported get request. Object with ID '123' does not exist"
        fake.fail_next(400, graph_error_body(100, message))
        with pytest.raises(MediaNotFoundError, match="unknown or expired"):
            await client.download_media("123")


@pytest.mark.parametrize("shape", ["onprem", "cloud"])
async def test_a_voice_callback_is_a_voice_message_in_both_shapes(
    bot_tester: StartBot, shape: str
) -> None:
    app = WhizRouter()
    seen: list[VoiceMessage] = []

    @app.on_message(type="voice")
    async def voice(message: VoiceMessage, ctx: Context) -> None:
        seen.append(message)

    bot = await bot_tester(app, shape="cloud" if shape == "cloud" else "onprem")
    body = media_callback(
        "voice", "m1", mime_type="audio/ogg", data=b"ogg", shape=bot.provider.shape
    )
    await bot.send(body)
    [message] = seen
    assert message.voice.id == "m1" and message.voice.mime_type == "audio/ogg"
    assert message.voice.sha256 is not None
    with pytest.raises(ValueError, match="unknown media kind"):
        media_callback("gif", "m1")
