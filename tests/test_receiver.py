"""The webhook endpoint over real HTTP: every answer of the table in docs/delivery.md, from
aiohttp (attached and standalone) and from the ASGI application under uvicorn."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import RawTestServer

from tests.conftest import AiohttpClient, BotClient, Recorder, fixture_bytes, raw_http
from tests.uvicorn_server import uvicorn_client
from whizrouter import Context, Message, Status, TextMessage, WhizRouter
from whizrouter.asgi import asgi_app
from whizrouter.errors import InboxError
from whizrouter.inbox.base import RawEvent
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.payloads import MAX_NESTING, nested_deeper_than
from whizrouter.server import request_handler
from whizrouter.testing import text_callback

Serve = Callable[[WhizRouter], Awaitable[BotClient]]
MakeApp = Callable[..., WhizRouter]


@pytest.fixture(params=["attached", "standalone", "asgi"])
async def serve(
    request: pytest.FixtureRequest, aiohttp_client: AiohttpClient
) -> AsyncIterator[Serve]:
    """Every test here runs against the three ways of serving a bot: its routes added to an
    aiohttp app (``make_web_app``, ``attach``), the hand-routed low-level server that
    ``whizrouter run`` serves, and the ASGI application (``whizrouter.asgi``) served by
    uvicorn, which starts and stops the bot with its lifespan."""
    started: list[WhizRouter] = []
    served: list[BotClient] = []

    async def start(app: WhizRouter) -> BotClient:
        if request.param == "attached":
            return await aiohttp_client(app.make_web_app())
        if request.param == "asgi":
            client = await uvicorn_client(asgi_app(app))
            served.append(client)
            return client
        await app.start()
        started.append(app)
        return await aiohttp_client(RawTestServer(request_handler(app)))  # type: ignore[arg-type]

    yield start
    for client in served:
        await client.close()
    for app in started:
        await app.stop()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def echo_app(make_app: MakeApp, recorder: Recorder, **kwargs: Any) -> WhizRouter:
    app = make_app(**kwargs)

    @app.on_message()
    async def on_message(message: Message, ctx: Context) -> None:
        await recorder.add(message)

    @app.on_status()
    async def on_status(status: Status, ctx: Context) -> None:
        await recorder.add(status)

    @app.on_raw()
    async def on_raw(raw: dict[str, Any], ctx: Context) -> None:
        await recorder.add(raw)

    return app


@pytest.mark.parametrize("shape", ["onprem", "cloud"])
async def test_text_callback_reaches_handler_typed(
    make_app: MakeApp, serve: Serve, recorder: Recorder, shape: str
) -> None:
    client = await serve(echo_app(make_app, recorder))
    response = await client.post("/webhook", data=fixture_bytes(f"{shape}/text.json"))
    assert response.status == 200
    [message] = await recorder.wait_for(1)
    assert isinstance(message, TextMessage)
    assert message.text.body
    assert message.shape == shape


async def test_batch_delivers_every_event(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    client = await serve(echo_app(make_app, recorder))
    response = await client.post("/webhook", data=fixture_bytes("cloud/batch_mixed.json"))
    assert response.status == 200
    items = await recorder.wait_for(5)
    assert sum(isinstance(i, Message) for i in items) == 3
    assert sum(isinstance(i, Status) for i in items) == 2


async def test_redelivery_is_acknowledged_and_not_dispatched_twice(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    client = await serve(echo_app(make_app, recorder))
    body = fixture_bytes("onprem/text.json")
    for _ in range(3):
        assert (await client.post("/webhook", data=body)).status == 200
    # A different event after the redeliveries: once it arrives, the redeliveries had their
    # chance to be dispatched (one conversation runs in order).
    other = fixture_bytes("onprem/text_reply_context.json")
    assert (await client.post("/webhook", data=other)).status == 200
    items = await recorder.wait_for(2)
    assert [i.id for i in items] == [
        orjson.loads(body)["messages"][0]["id"],
        orjson.loads(other)["messages"][0]["id"],
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"", "malformed JSON"),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b'"text"', "expected a JSON object, got a string"),
        (b"null", "expected a JSON object, got null"),
        (b"12.5", "expected a JSON object, got a number"),
        (b"\xff\xfe", "malformed JSON"),
    ],
)
async def test_bad_bodies_get_400_with_reason(
    make_app: MakeApp, serve: Serve, recorder: Recorder, body: bytes, reason: str
) -> None:
    client = await serve(echo_app(make_app, recorder))
    response = await client.post("/webhook", data=body)
    assert response.status == 400
    assert reason in (await response.json())["error"]


@pytest.mark.parametrize(
    "fixture", ["onprem/unknown.json", "cloud/unsupported.json", "cloud/edit.json"]
)
async def test_unknown_types_are_acknowledged(
    make_app: MakeApp, serve: Serve, recorder: Recorder, fixture: str
) -> None:
    client = await serve(echo_app(make_app, recorder))
    assert (await client.post("/webhook", data=fixture_bytes(fixture))).status == 200
    [message] = await recorder.wait_for(1)
    assert type(message).__name__ == "UnknownMessage"


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": "not a list"},
        {"messages": [{"id": 5, "from": None}]},
        {"statuses": [None]},
        {"object": "whatsapp_business_account", "entry": "nope"},
        {"hello": "world"},
    ],
)
async def test_unexpected_shapes_go_to_on_raw_with_200(
    make_app: MakeApp, serve: Serve, recorder: Recorder, payload: dict[str, Any]
) -> None:
    client = await serve(echo_app(make_app, recorder))
    assert (await client.post("/webhook", json=payload)).status == 200
    [raw] = await recorder.wait_for(1)
    assert isinstance(raw, dict)


@pytest.mark.parametrize("fixture", ["onprem/errors_only.json", "cloud/non_messages_field.json"])
async def test_non_message_callbacks_reach_on_raw(
    make_app: MakeApp, serve: Serve, recorder: Recorder, fixture: str
) -> None:
    client = await serve(echo_app(make_app, recorder))
    assert (await client.post("/webhook", data=fixture_bytes(fixture))).status == 200
    [raw] = await recorder.wait_for(1)
    assert isinstance(raw, dict)
    assert "errors" in raw or raw["entry"][0]["changes"][0]["field"] != "messages"


async def test_auth_required_when_configured(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = echo_app(make_app, recorder, webhook_user="provider", webhook_password="s3cret-pw")
    client = await serve(app)
    body = fixture_bytes("onprem/text.json")
    assert (await client.post("/webhook", data=body)).status == 401
    wrong = await client.post(
        "/webhook", data=body, headers={"Authorization": basic("provider", "guess")}
    )
    assert wrong.status == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    right = await client.post(
        "/webhook", data=body, headers={"Authorization": basic("provider", "s3cret-pw")}
    )
    assert right.status == 200
    assert len(await recorder.wait_for(1)) == 1


async def test_auth_is_checked_before_the_body_is_read(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = echo_app(
        make_app, recorder, webhook_user="provider", webhook_password="pw", read_timeout=30.0
    )

    async def never_finishes() -> Any:
        yield b'{"messages": ['
        await asyncio.Event().wait()

    client = await serve(app)
    # The body never completes; a 401 can only come back if auth was checked first.
    response = await asyncio.wait_for(client.post("/webhook", data=never_finishes()), timeout=5)
    assert response.status == 401


async def _expect_continue(
    client: BotClient, headers: dict[str, str], body: bytes, length: int | None = None
) -> bytes:
    """POST with ``Expect: 100-continue`` as a provider's HTTP client may: the body is sent
    only after ``100 Continue``. Returns everything the server answered."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = [
        "POST /webhook HTTP/1.1",
        "Host: bot",
        "Content-Type: application/json",
        f"Content-Length: {len(body) if length is None else length}",
        "Expect: 100-continue",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    if first.startswith(b"HTTP/1.1 100"):
        writer.write(body)
        first += await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    writer.close()
    return first


async def test_expect_continue_is_refused_before_the_body_is_sent(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = echo_app(make_app, recorder, webhook_user="provider", webhook_password="pw")
    client = await serve(app)
    body = fixture_bytes("onprem/text.json")
    refused = await _expect_continue(client, {}, body)
    assert refused.startswith(b"HTTP/1.1 401"), refused
    auth = {"Authorization": basic("provider", "pw")}
    too_big = await _expect_continue(client, auth, b"", length=11 << 20)
    assert too_big.startswith(b"HTTP/1.1 413"), too_big
    accepted = await _expect_continue(client, auth, body)
    assert accepted.startswith(b"HTTP/1.1 100 Continue"), accepted
    assert b"HTTP/1.1 200" in accepted
    assert len(await recorder.wait_for(1)) == 1


async def test_an_authorization_header_that_is_not_utf8_gets_401(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    client = await serve(echo_app(make_app, recorder, webhook_user="u", webhook_password="p"))
    assert client.server.port is not None
    answer = await raw_http(
        client.server.host,
        client.server.port,
        b"POST /webhook HTTP/1.1\r\nHost: bot\r\nAuthorization: Basic \xff\xfe\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer


async def test_compressed_bodies_are_decoded_or_refused_with_a_reason(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    client = await serve(echo_app(make_app, recorder, body_limit=4096))
    body = fixture_bytes("onprem/text.json")
    # aiohttp's client sends a Content-Length: that of the compressed body.
    gzipped = await client.post(
        "/webhook", data=gzip.compress(body), headers={"Content-Encoding": "gzip"}
    )
    assert gzipped.status == 200
    [message] = await recorder.wait_for(1)
    assert isinstance(message, TextMessage)
    broken = await client.post(
        "/webhook", data=b'{"messages":[]}', headers={"Content-Encoding": "deflate"}
    )
    assert broken.status == 400
    assert "could not be decoded (Content-Encoding: deflate)" in (await broken.json())["error"]
    # The limit holds the decoded size: a small compressed body of 8 KiB of JSON is refused.
    bomb = gzip.compress(orjson.dumps({"messages": [], "padding": " " * 8192}))
    assert len(bomb) < 4096
    refused = await client.post("/webhook", data=bomb, headers={"Content-Encoding": "gzip"})
    assert refused.status == 413


async def test_ids_that_cannot_key_dedupe_are_kept_as_raw_events(
    make_app: MakeApp, serve: Serve, recorder: Recorder, tmp_path: Path
) -> None:
    # SQLite's JSON functions cut a string at NUL: "wamid.X\0A" would take the key of
    # "wamid.X" and drop that message as a redelivery. Empty and huge ids are no keys either.
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    client = await serve(echo_app(make_app, recorder, inbox=url))
    odd_ids = ["wamid.X\x00A", "", "", "w" * 600]
    for number, odd in enumerate(odd_ids):
        # Different texts: two identical raw bodies would be one event sent twice.
        body = text_callback(f"odd {number}", message_id="unused")
        body["messages"][0]["id"] = odd
        assert (await client.post("/webhook", json=body)).status == 200
    assert (
        await client.post("/webhook", json=text_callback("real", message_id="wamid.X"))
    ).status == 200
    seen = await recorder.wait_for(5)
    raws = [event for event in seen if isinstance(event, dict)]
    assert sorted(raw["messages"][0]["id"] for raw in raws) == sorted(odd_ids)
    [real] = [event for event in seen if isinstance(event, TextMessage)]
    assert real.id == "wamid.X" and real.text.body == "real"


@pytest.mark.parametrize("depth", [MAX_NESTING - 3, 200, 300])
async def test_json_nested_deeper_than_an_event_can_be_read_back_gets_400(
    make_app: MakeApp, serve: Serve, recorder: Recorder, depth: int
) -> None:
    # A 200 promises the handlers the event: pydantic reads about 200 levels back from the
    # stored JSON (orjson writes 255 and parses 1024), so deeper callbacks are refused.
    client = await serve(echo_app(make_app, recorder))
    extra = b"[" * depth + b"1" + b"]" * depth
    body = (
        b'{"messages":[{"from":"1","id":"wamid.deep","timestamp":"1","type":"text",'
        b'"text":{"body":"hi"},"extra":' + extra + b"}]}"
    )  # the callback nests depth + 3 levels
    response = await client.post("/webhook", data=body)
    if depth + 3 > MAX_NESTING:
        assert response.status == 400
        assert f"more than {MAX_NESTING} levels" in (await response.json())["error"]
        return
    assert response.status == 200
    [message] = await recorder.wait_for(1)
    assert isinstance(message, TextMessage) and message.text.body == "hi"


def test_the_nesting_check_counts_levels_not_brackets() -> None:
    shallow = {"a": [[1], [2], [3]] * 100}
    body = orjson.dumps(shallow)
    assert not nested_deeper_than(shallow, body, limit=4)
    assert nested_deeper_than(shallow, body, limit=2)
    assert not nested_deeper_than({"text": "[[[["}, b'{"text":"[[[["}', limit=2)


async def test_body_over_limit_gets_413(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    client = await serve(echo_app(make_app, recorder, body_limit=1024))
    big = orjson.dumps({"messages": [], "padding": "x" * 2048})
    response = await client.post("/webhook", data=big)
    assert response.status == 413

    async def chunked() -> Any:
        for _ in range(4):
            yield b" " * 512

    response = await client.post("/webhook", data=chunked())
    assert response.status == 413


async def test_default_limit_refuses_12_mb(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    client = await serve(echo_app(make_app, recorder))
    response = await client.post("/webhook", data=io.BytesIO(b" " * (12 * 1024 * 1024)))
    assert response.status == 413


async def test_limit_holds_when_attached_to_an_app_with_a_small_client_max_size(
    make_app: MakeApp, aiohttp_client: Any, recorder: Recorder
) -> None:
    from aiohttp import web

    web_app = web.Application(client_max_size=1024)
    echo_app(make_app, recorder).attach(web_app)
    client = await aiohttp_client(web_app)
    body = orjson.dumps(
        {
            "messages": [
                {
                    "id": "wamid.big",
                    "from": "1555",
                    "type": "text",
                    "timestamp": "1",
                    "text": {"body": "x" * 4000},
                }
            ]
        }
    )
    assert (await client.post("/webhook", data=body)).status == 200
    [message] = await recorder.wait_for(1)
    assert message.text.body == "x" * 4000


async def test_slow_body_gets_408(make_app: MakeApp, serve: Serve, recorder: Recorder) -> None:
    client = await serve(echo_app(make_app, recorder, read_timeout=0.2))

    async def trickle() -> Any:
        yield b'{"messages": ['
        await asyncio.Event().wait()

    response = await asyncio.wait_for(client.post("/webhook", data=trickle()), timeout=5)
    assert response.status == 408


async def test_refused_callbacks_are_counted_and_warned_about_once_per_status(
    make_app: MakeApp, serve: Serve, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    app = echo_app(make_app, recorder, webhook_user="provider", webhook_password="s3cret-pw")
    client = await serve(app)
    body = fixture_bytes("onprem/text.json")
    right = {"Authorization": basic("provider", "s3cret-pw")}
    with caplog.at_level(logging.DEBUG, logger="whizrouter.receiver"):
        for _ in range(3):
            wrong = {"Authorization": basic("provider", "guess")}
            assert (await client.post("/webhook", data=body, headers=wrong)).status == 401
        assert (await client.post("/webhook", data=b"{bad", headers=right)).status == 400
        assert (await client.post("/webhook", data=body, headers=right)).status == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # One warning per status, however many requests: 401 once (not three times), 400 once.
    assert len(warnings) == 2, warnings
    assert "answered 401" in warnings[0] and "WHIZROUTER_WEBHOOK_USER/PASSWORD" in warnings[0]
    assert "answered 400" in warnings[1] and "malformed JSON" in warnings[1]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert sum("401 for POST /webhook" in line for line in debug) == 3
    assert all("s3cret-pw" not in r.getMessage() for r in caplog.records)
    report = await (await client.get("/healthz")).json()
    assert report["refused"] == {"400": 1, "401": 3}
    assert report["acknowledged"] == 1


async def test_healthz(make_app: MakeApp, serve: Serve, recorder: Recorder) -> None:
    client = await serve(echo_app(make_app, recorder))
    response = await client.get("/healthz")
    assert response.status == 200
    report = await response.json()
    assert report["status"] == "ok"
    assert report["inbox"] == "memory"
    assert report["acknowledged"] == 0


async def test_shutting_down_answers_503_with_retry_after(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = echo_app(make_app, recorder)
    client = await serve(app)
    app.stop_accepting()
    response = await client.post("/webhook", data=fixture_bytes("onprem/text.json"))
    assert response.status == 503
    assert int(response.headers["Retry-After"]) > 0
    assert (await client.get("/healthz")).status == 503


async def test_full_inbox_answers_503_and_healthz_counts_it(
    make_app: MakeApp, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(max_backlog=2)
    gate = asyncio.Event()

    @app.on_message()
    async def stuck(message: Message, ctx: Context) -> None:
        await gate.wait()

    client = await serve(app)
    assert (await client.post("/webhook", data=fixture_bytes("onprem/text.json"))).status == 200
    assert (await client.post("/webhook", data=b"[]")).status == 400
    # A redelivery is acknowledged too: the provider must stop resending it.
    assert (await client.post("/webhook", data=fixture_bytes("onprem/text.json"))).status == 200
    batch = fixture_bytes("onprem/batch_mixed.json")  # five events: over the bound of two
    response = await client.post("/webhook", data=batch)
    assert response.status == 503
    assert "Retry-After" in response.headers
    report = await (await client.get("/healthz")).json()
    assert (report["acknowledged"], report["refused_full"]) == (2, 1)
    assert report["refused"] == {"400": 1, "503": 1}
    # The warning gives the inbox's own reason (a NATS stream's max_bytes gives another).
    [warning] = [r for r in caplog.records if "inbox full" in r.getMessage()]
    assert "the memory inbox holds 1 unsettled events (bound 2)" in warning.getMessage()
    gate.set()


class BrokenInbox(MemoryInbox):
    """A memory inbox whose appends fail as ``failure`` says."""

    def __init__(self, failure: Exception) -> None:
        super().__init__()
        self.failure = failure

    async def append(self, events: Sequence[RawEvent]) -> int:
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "traceback"),
    [(InboxError("the disk is full; free some space"), False), (RuntimeError("a bug"), True)],
)
async def test_a_failing_inbox_gets_503_and_one_log_line_per_10_s(
    make_app: MakeApp,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    failure: Exception,
    traceback: bool,
) -> None:
    app = make_app()

    @app.on_message()
    async def on_message(message: Message, ctx: Context) -> None:
        pass

    app.replace_parts(inbox=BrokenInbox(failure))
    client = await serve(app)
    for n in range(5):
        callback = text_callback("hi", message_id=f"wamid.{n}")
        response = await client.post("/webhook", json=callback)
        assert response.status == 503 and response.headers["Retry-After"] == "5"
    [logged] = [r for r in caplog.records if "could not store a callback" in r.getMessage()]
    assert logged.levelno == logging.ERROR and str(failure) in logged.getMessage()
    # An InboxError explains itself; anything else is a bug whose traceback is wanted.
    assert (logged.exc_info is not None) is traceback
    report = await (await client.get("/healthz")).json()
    assert report["refused"] == {"503": 5}


async def test_nothing_user_written_runs_before_the_200(make_app: MakeApp, serve: Serve) -> None:
    app = make_app()
    release = asyncio.Event()
    started = asyncio.Event()

    @app.on_message()
    async def slow(message: Message, ctx: Context) -> None:
        started.set()
        await release.wait()

    client = await serve(app)
    response = await asyncio.wait_for(
        client.post("/webhook", data=fixture_bytes("onprem/text.json")), timeout=5
    )
    assert response.status == 200
    await asyncio.wait_for(started.wait(), timeout=5)
    release.set()


async def test_a_full_disk_gets_503_saying_what_to_do_and_the_bot_goes_on_once_there_is_room(
    make_app: MakeApp,
    serve: Serve,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    # SQLite's max_page_count makes the file as good as a full disk: writes needing a new
    # page fail with "database or disk is full".
    inbox = SqliteInbox(tmp_path / "inbox.db")
    client = await serve(echo_app(make_app, recorder, inbox=inbox))
    assert (await client.post("/webhook", json=text_callback("small"))).status == 200
    await recorder.wait_for(1)

    def limit(pages: int | None) -> Callable[[sqlite3.Connection], object]:
        def run(conn: sqlite3.Connection) -> object:
            now = conn.execute("PRAGMA page_count").fetchone()[0]
            return conn.execute(f"PRAGMA max_page_count={pages or now}").fetchone()

        return run

    await inbox._submit(limit(None))  # no room to grow
    big = text_callback("x" * 60_000)
    for _ in range(3):
        response = await client.post("/webhook", json=big)
        assert response.status == 503 and response.headers["Retry-After"] == "5"
    [logged] = [r for r in caplog.records if "could not store a callback" in r.getMessage()]
    assert "database or disk is full; free disk space on the file system of" in logged.getMessage()
    assert logged.exc_info is None

    await inbox._submit(limit(1_000_000))  # room again
    assert (await client.post("/webhook", json=big)).status == 200
    [_, message] = await recorder.wait_for(2)
    assert isinstance(message, TextMessage) and len(message.text.body) == 60_000


async def test_other_paths_get_404_and_other_methods_405(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = echo_app(make_app, recorder)
    client = await serve(app)
    missing = await client.post("/hook", data=fixture_bytes("onprem/text.json"))
    assert missing.status == 404
    wrong = await client.get("/webhook")
    assert wrong.status == 405
    assert wrong.headers["Allow"] == "POST"
    assert (await client.post("/healthz")).status == 405
    head = await client.head("/healthz")
    assert head.status == 200
    assert app.receiver.acknowledged == 0
    assert app.inbox.backlog() == 0


async def test_a_worker_serves_only_the_health_check(
    make_app: MakeApp, serve: Serve, recorder: Recorder, tmp_path: Path
) -> None:
    app = echo_app(make_app, recorder, role="worker", inbox=f"sqlite:///{tmp_path / 'i.db'}")
    client = await serve(app)
    assert (await client.post("/webhook", data=fixture_bytes("onprem/text.json"))).status == 404
    assert (await client.get("/healthz")).status == 200


async def test_a_body_cut_short_by_the_client_is_never_stored(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = echo_app(make_app, recorder)
    client = await serve(app)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    body = fixture_bytes("onprem/text.json")
    writer.write(
        b"POST /webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:-5]
    )
    await writer.drain()
    writer.write_eof()  # the client gives up half-way through its body
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert not answer.startswith(b"HTTP/1.1 200"), answer
    assert app.receiver.acknowledged == 0
    assert app.inbox.backlog() == 0
    # The connection is gone, not the server: a whole callback still gets its 200.
    assert (await client.post("/webhook", data=body)).status == 200
    assert len(await recorder.wait_for(1)) == 1


async def test_events_of_a_kind_no_handler_takes_are_answered_200_and_not_stored(
    make_app: MakeApp, serve: Serve, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="whizrouter")
    app = make_app()

    @app.on_message()
    async def on_message(message: Message, ctx: Context) -> None:
        await recorder.add(message.id)

    client = await serve(app)
    # Two status-only callbacks, one of them twice, and a batch of three messages and two
    # statuses: every one is answered 200, only the messages are stored.
    for name in ("status_sent.json", "status_read.json", "status_read.json", "batch_mixed.json"):
        response = await client.post("/webhook", data=fixture_bytes("onprem/" + name))
        assert response.status == 200
        assert await response.json() == {"ok": True}

    assert len(await recorder.wait_for(3)) == 3
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert await app.inbox.stats() == {"pending": 0, "dead": 0, "seen": 3}
    assert app.dispatcher.unhandled == 0  # the dispatcher never saw a status
    health = await (await client.get("/healthz")).json()
    assert health["acknowledged"] == 4
    assert health["unwanted"] == 5
    assert (
        "not stored: status events, since no handler takes them (answered 200 and counted as "
        "unwanted in /healthz; register an on_status handler to receive them)" in caplog.text
    )


async def test_a_receiver_stores_every_kind_for_its_workers(
    make_app: MakeApp, serve: Serve, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="whizrouter")
    # No handler here: the workers' handlers, in other processes, decide what is wanted.
    app = make_app(role="receiver", inbox=f"sqlite:///{tmp_path / 'i.db'}")
    client = await serve(app)

    for name in ("status_sent.json", "errors_only.json", "text.json"):
        response = await client.post("/webhook", data=fixture_bytes("onprem/" + name))
        assert response.status == 200

    assert (await app.inbox.stats())["pending"] == 3
    assert app.receiver.unwanted == 0
    assert "not stored" not in caplog.text


async def test_an_onprem_number_posts_to_its_own_path(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = make_app(numbers={"sales": "sales-key", "support": "support-key"})

    @app.on_message()
    async def on_message(message: Message, ctx: Context) -> None:
        await recorder.add((ctx.number, message.id))

    client = await serve(app)
    body = fixture_bytes("onprem/text.json")
    message_id = orjson.loads(body)["messages"][0]["id"]
    assert (await client.post("/webhook/sales", data=body)).status == 200
    assert await recorder.wait_for(1) == [("sales", message_id)]
    # Not a number's path: neither a dot segment nor a deeper one.
    for path in ("/webhook/..", "/webhook/sales/more", "/webhook/"):
        assert (await client.post(path, data=body)).status == 404, path


async def test_without_numbers_a_number_path_is_not_served(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    client = await serve(echo_app(make_app, recorder))
    response = await client.post("/webhook/sales", data=fixture_bytes("onprem/text.json"))
    assert response.status == 404
