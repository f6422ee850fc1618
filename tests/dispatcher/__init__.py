"""Tests of ``whizrouter.dispatcher``, one file per module, and what they share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.conftest import BotClient
from whizrouter import WhizRouter
from whizrouter.testing import text_callback

Serve = Callable[[WhizRouter], Awaitable[BotClient]]
MakeApp = Callable[..., WhizRouter]


async def post_texts(client: BotClient, wa_id: str, texts: list[str]) -> None:
    """Post one text callback per item of ``texts`` from ``wa_id``, each answered 200."""
    for text in texts:
        response = await client.post("/webhook", json=text_callback(text, wa_id=wa_id))
        assert response.status == 200
