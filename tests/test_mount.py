"""``app.attach(web_app)``: the health check beside the webhook, and no path taken twice."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.conftest import AiohttpClient, fixture_bytes
from whizrouter import ConfigurationError, WhizRouter


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def test_the_health_check_is_served_beside_the_webhook(
    make_app: Any, aiohttp_client: AiohttpClient
) -> None:
    web_app = web.Application()
    web_app.router.add_get("/", _hello)
    bot: WhizRouter = make_app()
    bot.attach(web_app, path="/bots/wa/webhook")
    client = await aiohttp_client(web_app)
    assert (await client.get("/bots/wa/healthz")).status == 200
    assert (await client.get("/healthz")).status == 404
    callback = await client.post("/bots/wa/webhook", data=fixture_bytes("onprem/text.json"))
    assert callback.status == 200
    assert await (await client.get("/")).text() == "hello"


async def test_health_path_puts_it_elsewhere_or_nowhere(
    make_app: Any, aiohttp_client: AiohttpClient
) -> None:
    web_app = web.Application()
    make_app().attach(web_app, path="/wa/webhook", health_path="/status/wa")
    other = web.Application()
    make_app().attach(other, health_path="")
    client = await aiohttp_client(web_app)
    assert (await client.get("/status/wa")).status == 200
    assert (await client.get("/wa/healthz")).status == 404
    # The readiness check and the metrics stay beside the webhook.
    assert (await client.get("/wa/metrics")).status == 200
    assert [r.canonical for r in other.router.resources()] == ["/webhook", "/readyz", "/metrics"]


@pytest.mark.parametrize(
    ("route", "taken", "fix"),
    [
        (lambda app: app.router.add_post("/webhook", _hello), "/webhook (POST)", "path=..."),
        (lambda app: app.router.add_get("/healthz", _hello), "/healthz (GET, HEAD)", "health_path"),
        (lambda app: app.router.add_get("/{page}", _hello), "/{page} (GET, HEAD)", "path=..."),
    ],
)
def test_a_path_the_host_app_already_routes_is_refused(
    route: Any, taken: str, fix: str, make_app: Any
) -> None:
    web_app = web.Application()
    route(web_app)
    before = len(web_app.router.resources())
    with pytest.raises(ConfigurationError, match="already routes") as refused:
        make_app().attach(web_app)
    assert taken in str(refused.value)
    assert fix in str(refused.value)
    assert len(web_app.router.resources()) == before
