"""``GET /metrics``: scraped with prometheus-client's own parser after a known mix of traffic."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Recorder
from whizrouter import Context, RetryPolicy, TextMessage, WhizRouter
from whizrouter.testing import FakeProvider, free_port, status_callback, text_callback

MakeApp = Callable[..., WhizRouter]
Serve = Callable[[WhizRouter], Awaitable[Any]]

FAST = RetryPolicy(attempts=1, base=0.01, max_total=1.0, jitter=False)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition by (name, labels), parsed by prometheus-client."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_every_counter_matches_a_known_mix_of_traffic(
    provider: FakeProvider, make_app: MakeApp, serve_both: Serve, recorder: Recorder
) -> None:
    client = provider.client()
    app = make_app(client=client, retry=FAST)

    @app.on_message(text="fail")
    async def always_fails(message: TextMessage, ctx: Context) -> None:
        raise RuntimeError("this handler always fails")

    @app.on_message()
    async def reply(message: TextMessage, ctx: Context) -> None:
        await ctx.reply("ok")
        await recorder.add(message)

    http = await serve_both(app)
    provider.fail_next(500, path="/v1/messages")  # the first reply is retried once
    new = [
        text_callback(f"hi {n}", wa_id=f"3160000000{n}", message_id=f"wamid.{n}") for n in range(3)
    ]
    for callback in new:
        assert (await http.post("/webhook", json=callback)).status == 200
    for callback in new[:2]:  # redeliveries
        assert (await http.post("/webhook", json=callback)).status == 200
    for n in range(2):  # statuses: no handler takes them
        status = status_callback(f"wamid.out{n}", "delivered")
        assert (await http.post("/webhook", json=status)).status == 200
    failing = text_callback("fail", wa_id="31600000009", message_id="wamid.f")
    assert (await http.post("/webhook", json=failing)).status == 200
    assert (await http.post("/webhook", data=b"{not json")).status == 400
    await recorder.wait_for(3)
    await app.dispatcher.wait_idle()  # type: ignore[union-attr]

    response = await http.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    found = samples(await response.text())

    assert value(found, "whizrouter_callbacks_total", code="200") == 8
    assert value(found, "whizrouter_callbacks_total", code="400") == 1
    assert value(found, "whizrouter_events_total", kind="message", outcome="stored") == 4
    assert value(found, "whizrouter_events_total", kind="message", outcome="duplicate") == 2
    assert value(found, "whizrouter_events_total", kind="status", outcome="unwanted") == 2
    assert value(found, "whizrouter_events_total", kind="status", outcome="stored") == 0
    assert value(found, "whizrouter_backlog_events") == 0
    assert value(found, "whizrouter_oldest_event_age_seconds") == 0
    assert value(found, "whizrouter_dead_letters") == 1
    name_ok = f"{__name__}.test_every_counter_matches_a_known_mix_of_traffic.<locals>.reply"
    name_fail = name_ok.replace(".reply", ".always_fails")
    assert value(found, "whizrouter_handled_total", handler=name_ok, outcome="ok") == 3
    assert value(found, "whizrouter_handled_total", handler=name_fail, outcome="retry") == 1
    assert value(found, "whizrouter_handled_total", handler=name_fail, outcome="dead") == 1
    assert value(found, "whizrouter_handler_seconds_count", handler=name_ok) == 3
    assert value(found, "whizrouter_handler_seconds_count", handler=name_fail) == 2
    requests = "whizrouter_provider_requests_total"
    assert value(found, requests, endpoint="messages", code="200") == 3
    assert value(found, requests, endpoint="messages", code="500") == 1
    assert value(found, "whizrouter_provider_request_seconds_count", endpoint="messages") == 4
    assert value(found, "whizrouter_ack_seconds_count") == 8
    assert value(found, "whizrouter_ack_seconds_bucket", le="+Inf") == 8
    assert 0 < value(found, "whizrouter_ack_seconds_sum") < 8
    assert value(found, "process_open_fds") > 0  # the process' own metrics come along
    await client.close()


async def test_the_oldest_waiting_event_is_measured(make_app: MakeApp, serve: Serve) -> None:
    app = make_app()
    release = asyncio.Event()

    @app.on_message()
    async def slow(message: TextMessage, ctx: Context) -> None:
        await release.wait()

    client = await serve(app)
    assert (await client.post("/webhook", json=text_callback("hi"))).status == 200
    found = samples(await (await client.get("/metrics")).text())
    assert value(found, "whizrouter_backlog_events") == 1
    assert 0 <= value(found, "whizrouter_oldest_event_age_seconds") < 5
    release.set()


async def test_metrics_sit_behind_the_webhooks_basic_auth(make_app: MakeApp, serve: Serve) -> None:
    app = make_app(webhook_user="meta", webhook_password="s3cret-pass")
    client = await serve(app)
    assert (await client.get("/metrics")).status == 401
    auth = aiohttp.encode_basic_auth("meta", "s3cret-pass")
    response = await client.get("/metrics", headers={"Authorization": auth})
    assert response.status == 200
    assert "s3cret-pass" not in await response.text()


async def test_a_metrics_port_serves_them_without_auth_instead(
    make_app: MakeApp, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("WHIZROUTER_METRICS_PORT", str(port))
    app = make_app(webhook_user="meta", webhook_password="s3cret-pass")
    client = await serve(app)
    assert (await client.get("/metrics")).status == 404  # not on the bot's port any more
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert "whizrouter_callbacks_total" in await response.text()
        async with session.get(f"http://127.0.0.1:{port}/webhook") as response:
            assert response.status == 404
