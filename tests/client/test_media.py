"""Media over real HTTP against the fake provider, in both API shapes: download (streamed,
capped, checked, two steps on Cloud), save, upload, delete, and their errors."""

from __future__ import annotations

import base64
import hashlib
import os
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from tests.client.conftest import TO
from whizrouter import (
    MediaIntegrityError,
    MediaNotFoundError,
    MediaStream,
    MediaTooLargeError,
    MessageValidationError,
    ProviderError,
    WhizardClient,
)
from whizrouter.client import KEY_HEADER
from whizrouter.media import media_kind, sha256_hex
from whizrouter.media_client import through_base_url
from whizrouter.testing import TEST_RETRY, FakeProvider

MB = 1024 * 1024


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_a_30_mb_document_streams_to_a_file_in_little_memory(
    fake: FakeProvider, client: WhizardClient, tmp_path: Path
) -> None:
    data = os.urandom(30 * MB)
    expected = hashlib.sha256(data).hexdigest()
    media_id = fake.add_media(data, "application/pdf")
    target = tmp_path / "big.pdf"
    tracemalloc.start()
    try:
        info = await client.save_media(media_id, target)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The fake and the client share this process: the peak covers both, and stays a small
    # fraction of the file.
    assert peak < 4 * MB, f"peak {peak / MB:.1f} MB while streaming 30 MB"
    assert info.size == len(data) and info.sha256 == expected
    assert info.mime_type == "application/pdf" and info.path == target
    assert hashlib.sha256(target.read_bytes()).hexdigest() == expected
    assert leftovers(tmp_path) == ["big.pdf"]


async def test_a_stream_says_type_size_and_sha256_and_yields_chunks(
    fake: FakeProvider, client: WhizardClient
) -> None:
    data = os.urandom(300_000)
    media_id = fake.add_media(data, "image/jpeg")
    async with client.open_media(media_id) as media:
        assert media.mime_type == "image/jpeg" and media.size == len(data)
        chunks = [chunk async for chunk in media.iter_chunks(50_000)]
        assert media.received == len(data)
    assert max(map(len, chunks)) <= 50_000 and b"".join(chunks) == data
    assert media.sha256 == hashlib.sha256(data).hexdigest()


async def test_cloud_downloads_in_two_steps_through_the_base_url_with_the_key() -> None:
    urls: list[str] = []

    async def record(session: Any, context: Any, params: aiohttp.TraceRequestStartParams) -> None:
        urls.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(record)
    data = b"\xff\xd8 a receipt " * 1000
    async with (
        FakeProvider(shape="cloud") as fake,
        aiohttp.ClientSession(trace_configs=[trace]) as session,
    ):
        media_id = fake.add_media(data, "image/jpeg")
        base = fake.base_url
        client = WhizardClient(fake.api_key, base, "cloud", session=session)
        assert await client.download_media(media_id) == data
        info, download = fake.calls
    assert (info.kind, info.method, info.path) == ("media_info", "GET", f"/{media_id}")
    assert (download.kind, download.path) == ("media_download", "/whatsapp_business/attachments/")
    assert download.headers[KEY_HEADER] == fake.api_key and download.ok
    assert len(urls) == 2 and all(url.startswith(base + "/") for url in urls), urls
    assert not any("fbsbx" in url for url in urls)


async def test_onprem_downloads_the_file_in_one_call(onprem: FakeProvider) -> None:
    media_id = onprem.add_media(b"OggS voice", "audio/ogg")
    async with onprem.client() as client:
        assert await client.download_media(media_id) == b"OggS voice"
    [call] = onprem.calls
    assert (call.kind, call.path, call.headers[KEY_HEADER]) == (
        "media_download",
        f"/v1/media/{media_id}",
        onprem.api_key,
    )


@pytest.mark.parametrize("declare_size", [True, False])
async def test_a_download_past_the_cap_stops_and_leaves_nothing(
    fake: FakeProvider, client: WhizardClient, tmp_path: Path, declare_size: bool
) -> None:
    media_id = fake.add_media(os.urandom(3 * MB), "video/mp4", declare_size=declare_size)
    with pytest.raises(MediaTooLargeError, match="over the download cap of 1048576 bytes") as err:
        await client.save_media(media_id, tmp_path / "clip.mp4", max_bytes=MB)
    assert "max_bytes=" in str(err.value)
    assert leftovers(tmp_path) == []
    opened: list[MediaStream] = []

    async def drain() -> None:
        async with client.open_media(media_id, max_bytes=MB) as media:
            opened.append(media)
            async for _ in media:
                pass

    with pytest.raises(MediaTooLargeError):
        await drain()
    if declare_size:
        assert opened == []  # refused on the stated size, before reading
    else:
        [media] = opened
        assert MB < media.received <= MB + 64 * 1024  # stopped at the first chunk past it


async def test_the_client_cap_is_the_default(fake: FakeProvider) -> None:
    media_id = fake.add_media(b"x" * 2000, "application/pdf")
    async with WhizardClient(
        fake.api_key, fake.base_url, fake.shape, retry=TEST_RETRY, max_media_bytes=1000
    ) as client:
        with pytest.raises(MediaTooLargeError):
            await client.download_media(media_id)
        assert await client.download_media(media_id, max_bytes=2000) == b"x" * 2000


async def test_an_unknown_id_is_a_typed_404_that_says_so(
    fake: FakeProvider, client: WhizardClient
) -> None:
    with pytest.raises(MediaNotFoundError) as err:
        await client.download_media("media.gone")
    assert isinstance(err.value, ProviderError) and err.value.http_code == 404
    assert not err.value.retryable and err.value.media_id == "media.gone"
    assert "unknown or expired" in str(err.value)
    assert len(fake.calls) == 1  # a 404 is final: not retried
    with pytest.raises(MediaNotFoundError):
        await client.delete_media("media.gone")


async def test_a_transient_failure_is_retried_by_the_shared_rule(
    fake: FakeProvider, client: WhizardClient
) -> None:
    media_id = fake.add_media(b"retry me", "text/plain")
    path = f"/v1/media/{media_id}" if fake.shape == "onprem" else "/whatsapp_business/attachments/"
    fake.fail_next(503, path=path, times=2)
    assert await client.download_media(media_id) == b"retry me"
    assert [call.status for call in fake.calls if call.path == path] == [503, 503, 200]


async def test_a_hash_mismatch_fails_and_saves_nothing(
    onprem: FakeProvider, tmp_path: Path
) -> None:
    media_id = onprem.add_media(b"the real bytes", "text/plain")
    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    async with onprem.client() as client:
        with pytest.raises(MediaIntegrityError, match="download it again"):
            await client.save_media(media_id, tmp_path / "file.txt", sha256=wrong)
        assert leftovers(tmp_path) == []
        right = base64.b64encode(hashlib.sha256(b"the real bytes").digest()).decode()
        info = await client.save_media(media_id, tmp_path / "file.txt", sha256=right)
    assert info.sha256 == hashlib.sha256(b"the real bytes").hexdigest()


async def test_upload_then_send_by_the_returned_id(
    fake: FakeProvider, client: WhizardClient
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(5000) + b"\r\n--\r\n"
    media_id = await client.upload_media(png, "image/png")
    held = fake.media[media_id]
    assert held.data == png and held.mime_type == "image/png"
    [upload] = fake.calls
    if fake.shape == "onprem":
        assert (upload.path, upload.headers["Content-Type"]) == ("/v1/media", "image/png")
    else:
        assert upload.path == "/media"
        assert upload.headers["Content-Type"].startswith("multipart/form-data")
    await client.send_image(TO, id=media_id, caption="your chart")
    [sent] = fake.sent
    assert sent.json is not None and sent.json["image"] == {"id": media_id, "caption": "your chart"}
    assert await client.download_media(media_id) == png


async def test_upload_from_a_path_or_a_file_guesses_nothing_it_is_told(
    fake: FakeProvider, client: WhizardClient, tmp_path: Path
) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7 report")
    from_path = await client.upload_media(path)
    assert fake.media[from_path].mime_type == "application/pdf"
    with path.open("rb") as handle:
        from_file = await client.upload_media(handle, "application/pdf")
    assert fake.media[from_file].data == b"%PDF-1.7 report"
    with pytest.raises(MessageValidationError, match="mime_type="):
        await client.upload_media(b"no idea")


async def test_files_over_the_limit_of_their_kind_are_refused_before_uploading(
    fake: FakeProvider, client: WhizardClient, tmp_path: Path
) -> None:
    with pytest.raises(MessageValidationError, match="5242880 bytes WhatsApp allows for a image"):
        await client.upload_media(b"x" * (5 * MB + 1), "image/jpeg")
    big = tmp_path / "sticker.webp"
    big.write_bytes(b"x" * (500 * 1024 + 1))
    with pytest.raises(MessageValidationError, match="sticker"):
        await client.upload_media(big)
    with pytest.raises(MessageValidationError, match="empty"):
        await client.upload_media(b"", "image/jpeg")
    assert fake.calls == []
    # The same image as a document is within that kind's limit.
    media_id = await client.upload_media(b"x" * (5 * MB + 1), "image/jpeg", kind="document")
    assert len(fake.media[media_id].data) == 5 * MB + 1


async def test_delete_removes_the_file(fake: FakeProvider, client: WhizardClient) -> None:
    media_id = await client.upload_media(b"temporary", "text/plain")
    await client.delete_media(media_id)
    assert media_id not in fake.media
    [delete] = [call for call in fake.calls if call.kind == "media_delete"]
    assert delete.method == "DELETE" and delete.ok
    with pytest.raises(MediaNotFoundError):
        await client.download_media(media_id)


async def test_a_message_names_its_media_and_its_hash(onprem: FakeProvider) -> None:
    data = b"voice note bytes"
    media_id = onprem.add_media(data, "audio/ogg")
    good = base64.b64encode(hashlib.sha256(data).digest()).decode()
    message: Any = SimpleNamespace(id=media_id, sha256=good)
    async with onprem.client() as client:
        from whizrouter.events import Media

        assert await client.download_media(Media(id=media_id, sha256=good)) == data
        with pytest.raises(MediaIntegrityError):
            await client.download_media(Media(id=media_id, sha256="0" * 64))
        with pytest.raises(MessageValidationError, match="carries no media"):
            await client.download_media(message)


def test_meta_urls_are_rewritten_to_the_base_url() -> None:
    meta = "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&hash=x"
    assert (
        through_base_url(meta, "https://waba.example.com/")
        == "https://waba.example.com/whatsapp_business/attachments/?mid=1&hash=x"
    )
    assert through_base_url(meta, "https://proxy.example.com/wa").startswith(
        "https://proxy.example.com/wa/whatsapp_business/"
    )


def test_hashes_are_read_from_hex_or_base64() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert sha256_hex(base64.b64encode(digest).decode()) == digest.hex()
    assert sha256_hex(digest.hex().upper()) == digest.hex()
    assert sha256_hex("4654+8g=") is None and sha256_hex(None) is None


def test_media_kinds_follow_the_mime_type() -> None:
    assert media_kind("image/webp") == "sticker"
    assert media_kind("audio/ogg; codecs=opus") == "audio"
    assert media_kind("application/zip") == "document"
    assert media_kind("image/png", "document") == "document"
