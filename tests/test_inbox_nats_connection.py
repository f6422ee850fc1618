"""The NATS inbox's connection (``whizrouter.inbox.nats.connection``): credentials, TLS, a
server that is not there, one that goes away for a while, and one lost for good."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import AiohttpClient
from tests.natsinbox import claim_n, event, eventually, opened
from tests.natsserver import unique_stream
from whizrouter import WhizRouter
from whizrouter.errors import ConfigurationError, InboxError
from whizrouter.inbox.nats import NatsInbox
from whizrouter.testing import NatsServer, text_callback


async def test_a_connection_closed_for_good_stops_the_app(tmp_path: Path) -> None:
    # With reconnect=false, the connection never comes back: the app fails (whizrouter run
    # exits for its supervisor to restart it) instead of answering 503 for ever.
    server = NatsServer(store_dir=tmp_path / "nats")
    url = server.start()
    try:
        app = WhizRouter(inbox=f"{url}?stream={unique_stream()}&reconnect=false", role="receiver")
        async with app:
            server.stop()
            failure = await asyncio.wait_for(app.wait_failed(), timeout=10)
            assert "closed for good" in str(failure) and "restart the process" in str(failure)
            assert app.failure is failure
    finally:
        server.stop()


async def test_credentials_in_the_url_reach_the_server() -> None:
    server = NatsServer(args=("--user", "alice", "--pass", "s3cret"))
    url = server.start()
    try:
        authed = url.replace("nats://", "nats://alice:s3cret@")
        inbox = NatsInbox.from_url(f"{authed}?stream={unique_stream()}&name=test")
        await inbox.open()
        try:
            assert await inbox.append([event("491", 1)]) == 1
            assert "s3cret" not in inbox.description and "alice" not in inbox.description
        finally:
            await inbox.close()
        wrong = NatsInbox.from_url(
            url.replace("nats://", "nats://alice:wrong@") + "?reconnect_time_wait=0.05"
        )
        with pytest.raises(InboxError, match="cannot open") as refused:
            await asyncio.wait_for(wrong.open(), 10)
        assert "wrong" not in str(refused.value)
    finally:
        server.stop()


async def test_open_fails_fast_when_no_server_listens() -> None:
    inbox = NatsInbox.from_url("nats://127.0.0.1:1?reconnect_time_wait=0.05&connect_timeout=1")
    with pytest.raises(InboxError, match="cannot open the NATS inbox"):
        await asyncio.wait_for(inbox.open(), 10)


async def test_a_receiver_refuses_at_once_and_reports_unavailable_while_nats_is_down(
    tmp_path: Path, aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    server = NatsServer(store_dir=tmp_path / "nats")
    url = server.start()
    port = int(url.rpartition(":")[2])
    stream = unique_stream()
    try:
        app = WhizRouter(inbox=f"{url}?stream={stream}&reconnect_time_wait=0.1", role="receiver")
        client: TestClient[web.Request, web.Application] = await aiohttp_client(app.make_web_app())

        async def health_is(status: int) -> bool:
            return (await client.get("/healthz")).status == status

        first = await client.post("/webhook", json=text_callback("before", message_id="w1"))
        assert first.status == 200

        server.stop()
        await eventually(lambda: health_is(503), "/healthz to report the lost connection")
        report = await (await client.get("/healthz")).json()
        assert (report["status"], report["connected"]) == ("unavailable", False)
        started = time.monotonic()
        for n in range(3):
            refused = await client.post(
                "/webhook", json=text_callback("during", message_id=f"w2-{n}")
            )
            assert refused.status == 503 and refused.headers["Retry-After"] == "5"
        assert time.monotonic() - started < 2  # refused at once, not after a publish timeout
        logged = [r for r in caplog.records if "could not store a callback" in r.getMessage()]
        assert len(logged) == 1  # one line for the outage, not one per callback
        assert "disconnected" in logged[0].getMessage() and logged[0].exc_info is None
        failed = [r for r in caplog.records if "Connect call failed" in r.getMessage()]
        assert len(failed) <= 1  # reconnect attempts, ten a second, are not logged one by one

        server.start(port=port)
        await eventually(lambda: health_is(200), "/healthz to recover", timeout=15)
        # The provider resends what got 503; everything answered 200 is in the stream.
        again = await client.post("/webhook", json=text_callback("during", message_id="w2-0"))
        assert again.status == 200
        async with opened(url, stream, partitions=16) as worker:
            got = await claim_n(worker, 2)
        assert [e.key for e in got] == ["m:w1", "m:w2-0"]
    finally:
        server.stop()


async def test_tls_url_refuses_a_server_without_tls() -> None:
    server = NatsServer(args=("--user", "alice", "--pass", "s3cret"))
    url = server.start()
    try:
        plain = url.replace("nats://", "tls://alice:s3cret@")
        inbox = NatsInbox.from_url(f"{plain}?stream={unique_stream()}")
        with pytest.raises(ConfigurationError, match="does not use it") as refused:
            await asyncio.wait_for(inbox.open(), 10)
        assert "s3cret" not in str(refused.value)
        assert "tls://" in str(refused.value) and "nats://" in str(refused.value)
    finally:
        server.stop()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("handshake_first", [False, True])
async def test_tls_url_works_with_a_tls_server(tmp_path: Path, handshake_first: bool) -> None:
    cert, key = self_signed_certificate(tmp_path)
    config = tmp_path / "tls.conf"
    config.write_text(
        f'tls {{ cert_file: "{cert}", key_file: "{key}"'
        f"{', handshake_first: true' if handshake_first else ''} }}\n"
    )
    server = NatsServer(args=("-c", str(config)))
    url = server.start().replace("nats://", "tls://")
    options = f"tls_ca={cert}" + ("&tls_handshake_first=true" if handshake_first else "")
    inbox = NatsInbox.from_url(f"{url}?stream={unique_stream()}&{options}")
    try:
        await asyncio.wait_for(inbox.open(), 10)
        assert await inbox.append([event("491", 1)]) == 1
        assert (await inbox.stats())["pending"] == 1
    finally:
        await inbox.close()
        server.stop()
