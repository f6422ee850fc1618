"""The fake provider: its lifecycle, the routes of each shape, waiting, failure injection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from whizrouter.backoff import RetryPolicy
from whizrouter.errors import ProviderError
from whizrouter.testing import FakeProvider, errors_list_body, html_error_page, meta_error_body

KEY = {"WHIZARD-KEY": "test-key"}
SEND = {"recipient_type": "individual", "to": "15551230001", "type": "text", "text": {"body": "x"}}
CLOUD_SEND = {**SEND, "messaging_product": "whatsapp"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    """A running on-premises fake."""
    async with FakeProvider() as provider:
        yield provider


@pytest.fixture
async def cloud() -> AsyncIterator[FakeProvider]:
    """A running Cloud fake."""
    async with FakeProvider(shape="cloud") as provider:
        yield provider


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A bare HTTP session, to talk to the fake without the client."""
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    fake: FakeProvider,
    method: str,
    path: str,
    json: Any = None,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """One raw request: status, parsed JSON (or text) and headers of the answer."""
    async with http.request(
        method,
        fake.base_url + path,
        json=json,
        data=data,
        headers=KEY if headers is None else headers,
    ) as response:
        body: Any = await response.text()
        if response.content_type == "application/json":
            body = await response.json()
        return response.status, body, response.headers


# --------------------------------------------------------------------------- lifecycle


async def test_lifecycle() -> None:
    fake = FakeProvider()
    with pytest.raises(RuntimeError, match="start"):
        _ = fake.base_url
    with pytest.raises(RuntimeError, match="start"):
        await fake.wait_for(1)
    await fake.start()
    await fake.start()  # idempotent
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert "calls=0" in repr(fake)
    await fake.close()
    await fake.close()
    assert "not started" in repr(fake)
    with pytest.raises(ValueError, match="shape"):
        FakeProvider(shape="v3")  # type: ignore[arg-type]


async def test_two_fakes_get_different_ports() -> None:
    async with FakeProvider() as one, FakeProvider() as two:
        assert one.base_url != two.base_url


# --------------------------------------------------------------------------- routes


async def test_the_key_is_checked(fake: FakeProvider, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, fake, "POST", "/v1/messages", SEND, headers={})
    assert (status, body) == (401, meta_error_body(401, "Missing WHIZARD-KEY header"))
    status, body, _ = await call(
        http, fake, "POST", "/v1/messages", SEND, headers={"WHIZARD-KEY": "nope"}
    )
    assert (status, body) == (401, meta_error_body(401, "Invalid api key"))
    assert [c.status for c in fake.calls] == [401, 401]
    assert fake.sent == []


async def test_onprem_send_and_mark_read(fake: FakeProvider, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, fake, "POST", "/v1/messages", SEND)
    assert status == 200
    assert body == {
        "messages": [{"id": "wamid.fake-1"}],
        "meta": {"api_status": "stable", "version": "2.53.0"},
    }
    status, body, _ = await call(http, fake, "PUT", "/v1/messages/wamid.IN", {"status": "read"})
    assert (status, body) == (200, {})
    [sent] = fake.sent
    assert (sent.kind, sent.message_id, sent.json) == ("send", "wamid.fake-1", SEND)
    assert sent.headers["whizard-key"] == "test-key"  # case-insensitive
    assert fake.marked_read == ["wamid.IN"]


async def test_cloud_send_and_mark_read(cloud: FakeProvider, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, cloud, "POST", "/messages", CLOUD_SEND)
    assert status == 200
    assert body == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "15551230001", "wa_id": "15551230001"}],
        "messages": [{"id": "wamid.fake-1"}],
    }
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"}
    status, body, _ = await call(http, cloud, "POST", "/messages", read)
    assert (status, body) == (200, {"success": True})
    assert [c.kind for c in cloud.calls] == ["send", "mark_read"]
    assert cloud.marked_read == ["wamid.IN"]


async def test_each_fake_serves_only_its_shape(
    fake: FakeProvider, cloud: FakeProvider, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(http, fake, "POST", "/messages", CLOUD_SEND)
    assert status == 404
    assert "onprem shape" in body["meta"]["developer_message"]
    status, body, _ = await call(http, cloud, "POST", "/v1/messages", SEND)
    assert status == 404
    assert "cloud shape" in body["meta"]["developer_message"]
    assert [c.kind for c in (*fake.calls, *cloud.calls)] == ["other", "other"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([1, 2], "JSON object"),
        ({"type": "text", "text": {"body": "x"}}, "to is required"),
        ({"to": "1", "type": "image"}, "image is required"),
    ],
)
async def test_malformed_sends_get_the_shapes_400(
    fake: FakeProvider,
    cloud: FakeProvider,
    http: aiohttp.ClientSession,
    body: Any,
    problem: str,
) -> None:
    status, answer, _ = await call(http, fake, "POST", "/v1/messages", body)
    assert status == 400
    assert problem in answer["errors"][0]["details"]
    cloud_body = {**body, "messaging_product": "whatsapp"} if isinstance(body, dict) else body
    status, answer, _ = await call(http, cloud, "POST", "/messages", cloud_body)
    assert status == 400
    assert answer["error"]["code"] == 100
    assert fake.sent == cloud.sent == []


async def test_cloud_requires_messaging_product(
    cloud: FakeProvider, http: aiohttp.ClientSession
) -> None:
    status, answer, _ = await call(http, cloud, "POST", "/messages", SEND)
    assert status == 400
    assert "messaging_product" in answer["error"]["message"]


async def test_onprem_mark_read_needs_status_read(
    fake: FakeProvider, http: aiohttp.ClientSession
) -> None:
    status, _, _ = await call(http, fake, "PUT", "/v1/messages/wamid.IN", {"status": "seen"})
    assert status == 400
    assert fake.marked_read == []


async def test_webhook_config_keeps_state(cloud: FakeProvider, http: aiohttp.ClientSession) -> None:
    assert (await call(http, cloud, "GET", "/v1/configs/webhook"))[:2] == (200, {})
    config = {"url": "https://bot.example.com/webhook", "headers": {"Authorization": "Basic x"}}
    assert (await call(http, cloud, "POST", "/v1/configs/webhook", config))[:2] == (200, config)
    assert cloud.webhook_config == config
    assert (await call(http, cloud, "GET", "/v1/configs/webhook"))[:2] == (200, config)
    status, _, _ = await call(http, cloud, "POST", "/v1/configs/webhook", {"headers": {}})
    assert status == 400
    assert [c.kind for c in cloud.calls] == [
        "get_webhook",
        "set_webhook",
        "get_webhook",
        "set_webhook",
    ]


async def test_a_non_json_body_is_recorded_raw(
    fake: FakeProvider, http: aiohttp.ClientSession
) -> None:
    await call(http, fake, "POST", "/v1/messages", data=b"not json")
    [recorded] = fake.calls
    assert (recorded.json, recorded.body, recorded.status) == (None, b"not json", 400)
    assert "POST /v1/messages -> 400 (send) not json" in recorded.describe()


# --------------------------------------------------------------------------- waiting


async def test_wait_for_a_count_and_a_predicate(
    fake: FakeProvider, http: aiohttp.ClientSession
) -> None:
    async def later() -> None:
        await call(http, fake, "GET", "/v1/configs/webhook")
        await call(http, fake, "POST", "/v1/messages", SEND)
        await call(http, fake, "POST", "/v1/messages", SEND)

    task = asyncio.create_task(later())
    sends = await fake.wait_for(lambda c: c.kind == "send", count=2)
    assert [c.message_id for c in sends] == ["wamid.fake-1", "wamid.fake-2"]
    assert len(await fake.wait_for(3)) == 3
    await task


async def test_wait_for_fails_clearly(fake: FakeProvider, http: aiohttp.ClientSession) -> None:
    await call(http, fake, "GET", "/v1/configs/webhook")
    with pytest.raises(AssertionError) as caught:
        await fake.wait_for(lambda c: c.kind == "send", timeout=0.05)
    message = str(caught.value)
    assert "waited 0.05 s for 1 matching call(s), got 0" in message
    assert "GET /v1/configs/webhook -> 200 (get_webhook)" in message


# --------------------------------------------------------------------------- failure injection


async def test_fail_next_serves_each_body_form(
    fake: FakeProvider, http: aiohttp.ClientSession
) -> None:
    fake.fail_next(503, html_error_page(503))
    fake.fail_next(500, "plain words")
    fake.fail_next(502, b"")
    fake.fail_next(429, headers={"Retry-After": "3"})
    answers = [await call(http, fake, "POST", "/v1/messages", SEND) for _ in range(5)]
    assert answers[0][0] == 503
    assert answers[0][2]["Content-Type"].startswith("text/html")
    assert "<title>503 Service Temporarily Unavailable</title>" in answers[0][1]
    assert answers[1][:2] == (500, "plain words")
    assert answers[1][2]["Content-Type"].startswith("text/plain")
    assert answers[2][:2] == (502, "")
    assert answers[3][:2] == (429, meta_error_body(429, "injected failure 429"))
    assert answers[3][2]["Retry-After"] == "3"
    assert answers[4][0] == 200
    assert [c.message_id for c in fake.sent] == ["wamid.fake-1"]


async def test_fail_next_counts_and_filters_by_path(
    fake: FakeProvider, http: aiohttp.ClientSession
) -> None:
    fake.fail_next(
        404, errors_list_body(1006, "Resource not found"), times=2, path="/v1/messages/x"
    )
    assert (await call(http, fake, "POST", "/v1/messages", SEND))[0] == 200
    for _ in range(2):
        assert (await call(http, fake, "PUT", "/v1/messages/x", {"status": "read"}))[0] == 404
    assert (await call(http, fake, "PUT", "/v1/messages/x", {"status": "read"}))[0] == 200
    assert fake.marked_read == ["x"]


async def test_delay_next_provokes_a_timeout_and_still_serves(fake: FakeProvider) -> None:
    fake.delay_next(2.0)
    async with fake.client(timeout=0.1, retry=RetryPolicy(attempts=0)) as client:
        with pytest.raises(ProviderError, match="timeout"):
            await client.send_text("15551230001", "slow")
    [recorded] = fake.sent  # the provider took it: a retry would duplicate it
    assert recorded.status == 200


async def test_close_releases_delayed_answers(http: aiohttp.ClientSession) -> None:
    fake = FakeProvider()
    await fake.start()
    fake.delay_next(30.0)
    request = asyncio.create_task(call(http, fake, "GET", "/v1/configs/webhook"))
    await fake.wait_for(1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await fake.close()
    assert loop.time() - started < 5
    await asyncio.gather(request, return_exceptions=True)


async def test_drop_next_closes_the_connection(
    fake: FakeProvider, http: aiohttp.ClientSession
) -> None:
    fake.drop_next()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, fake, "POST", "/v1/messages", SEND)
    assert (await call(http, fake, "POST", "/v1/messages", SEND))[0] == 200
    assert len(fake.sent) == 2


async def test_reset_forgets_calls_and_injections(
    fake: FakeProvider, http: aiohttp.ClientSession
) -> None:
    fake.fail_next(500)
    fake.delay_next(10)
    fake.drop_next()
    fake.reset()
    assert (await call(http, fake, "POST", "/v1/messages", SEND))[0] == 200
    fake.reset()
    assert fake.calls == []


# --------------------------------------------------------------------------- several numbers


async def test_several_numbers_each_with_its_own_key_and_webhook(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeProvider(numbers={"sales": "key-sales", "support": "key-support"}) as fake:
        for key in ("key-sales", "key-support", "test-key"):
            status, _, _ = await call(
                http, fake, "POST", "/v1/messages", SEND, headers={"WHIZARD-KEY": key}
            )
            assert 200 <= status < 300
        status, _, _ = await call(
            http, fake, "POST", "/v1/messages", SEND, headers={"WHIZARD-KEY": "key-other"}
        )
        assert status == 401
        assert [fake.number_of(c) for c in fake.sent] == ["sales", "support", None]
        hook = {"url": "https://bot.example.com/webhook/sales"}
        sales = {"WHIZARD-KEY": "key-sales"}
        assert (await call(http, fake, "POST", "/v1/configs/webhook", hook, headers=sales))[
            0
        ] == 200
        assert fake.webhook_configs == {"sales": hook, "support": {}}
        assert fake.webhook_config == {}  # the fake's own key has its own configuration
        _, body, _ = await call(http, fake, "GET", "/v1/configs/webhook", headers=sales)
        assert body == hook
        numbers = fake.numbers()
        assert sorted(numbers) == ["sales", "support"]
        assert numbers["sales"].api_key.get_secret_value() == "key-sales"
        assert (numbers["sales"].base_url, numbers["sales"].shape) == (fake.base_url, "onprem")
