"""``post_until_stored``: a callback is posted again until the bot answers 200."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from whizrouter.testing import free_port, post_until_stored, text_callback


def webhook(statuses: list[int], received: list[object]) -> web.Application:
    """A webhook that answers with ``statuses`` in turn, then 200."""

    async def answer(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/webhook", answer)
    return app


async def test_refusals_are_posted_again_and_counted() -> None:
    received: list[object] = []
    body = text_callback("hi")
    async with TestServer(webhook([503, 500], received)) as server, aiohttp.ClientSession() as s:
        refused = await post_until_stored(s, str(server.make_url("/webhook")), body, pause=0)
    assert refused == 2
    assert received == [body, body, body]


async def test_a_webhook_that_keeps_refusing_fails_clearly() -> None:
    received: list[object] = []
    async with TestServer(webhook([503] * 5, received)) as server, aiohttp.ClientSession() as s:
        url = str(server.make_url("/webhook"))
        with pytest.raises(AssertionError, match="refused a callback 3 times"):
            await post_until_stored(s, url, text_callback("hi"), attempts=3, pause=0)
    assert len(received) == 3


async def test_a_connection_error_counts_as_a_refusal() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(AssertionError, match="refused a callback 2 times"):
            await post_until_stored(
                session,
                f"http://127.0.0.1:{free_port()}/webhook",
                text_callback("hi"),
                attempts=2,
                pause=0,
            )
