"""Fixtures of the client tests: fake providers of both shapes, a client of each, and no
WHIZARD_* variable in the environment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from whizrouter.backoff import RetryPolicy
from whizrouter.client import WhizardClient
from whizrouter.testing import FakeProvider

TO = "4915112345678"
NO_RETRY = RetryPolicy(attempts=0)
Send = Callable[[WhizardClient], Awaitable[Any]]


@pytest.fixture(params=["onprem", "cloud"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeProvider]:
    """A running fake provider of each shape."""
    async with FakeProvider(shape=request.param) as provider:
        yield provider


@pytest.fixture
async def client(fake: FakeProvider) -> AsyncIterator[WhizardClient]:
    """A client of the fake's shape, with millisecond retries."""
    async with fake.client() as api:
        yield api


@pytest.fixture
async def onprem() -> AsyncIterator[FakeProvider]:
    """A running on-premises fake provider."""
    async with FakeProvider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _no_whizard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WHIZARD_API_KEY", "WHIZARD_BASE_URL", "WHIZARD_API_SHAPE"):
        monkeypatch.delenv(name, raising=False)


def envelope(shape: str, kind: str, content: Any, reply_to: str | None = None) -> dict[str, Any]:
    """The body a send of ``kind`` must produce in ``shape``."""
    body: dict[str, Any] = {"recipient_type": "individual", "to": TO, "type": kind, kind: content}
    if shape == "cloud":
        body["messaging_product"] = "whatsapp"
        if reply_to is not None:
            body["context"] = {"message_id": reply_to}
    return body
