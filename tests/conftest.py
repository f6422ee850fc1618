"""Shared fixtures: sample callbacks, a bot wired to a fake provider, and waiting helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer, TestClient

from whizrouter import WhizRouter
from whizrouter.runtime import loop_factory
from whizrouter.server import request_handler
from whizrouter.testing import FakeProvider

FIXTURES = Path(__file__).parent / "fixtures"

#: Modules whose async tests also run on uvloop, the loop ``whizrouter run`` serves on: the
#: webhook, the inboxes (whose writer threads call back into the loop) and delivery end to end.
BOTH_LOOPS = {"tests.test_receiver", "tests.test_inbox_contract", "tests.test_delivery"}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """asyncio's own loop for every async test, and uvloop as well for ``BOTH_LOOPS``."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    module = getattr(item, "module", None)
    uvloop = loop_factory("auto")  # None where uvloop is not installed
    if module is not None and module.__name__ in BOTH_LOOPS and uvloop is not None:
        factories["uvloop"] = uvloop
    return factories


AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
# The attached app's client, or the standalone server's (``whizrouter.server``), in
# test_receiver.py.
BotClient = TestClient[Any, Any]


def fixture_bytes(name: str) -> bytes:
    """The raw bytes of a sample callback, e.g. ``onprem/text.json``."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict[str, Any]:
    """A sample callback, parsed."""
    data: dict[str, Any] = orjson.loads(fixture_bytes(name))
    return data


class Recorder:
    """Collects what handlers saw and lets a test wait for it without sleeping."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Condition()

    async def add(self, item: Any) -> None:
        """Record one item and wake waiters."""
        async with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        """Wait until at least ``count`` items were recorded; fail clearly on timeout."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: len(self.items) >= count), timeout
                )
            except TimeoutError:
                raise AssertionError(
                    f"expected {count} items within {timeout} s, got {len(self.items)}: "
                    f"{self.items!r}"
                ) from None
            return list(self.items)


@pytest.fixture
def recorder() -> Recorder:
    """A fresh ``Recorder``."""
    return Recorder()


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    """A running fake provider (on-premises shape)."""
    async with FakeProvider() as fake:
        yield fake


@pytest.fixture
def make_app(provider: FakeProvider) -> Callable[..., WhizRouter]:
    """Build a ``WhizRouter`` on the memory inbox pointed at the fake provider."""

    def build(**kwargs: Any) -> WhizRouter:
        kwargs.setdefault("inbox", "memory")
        kwargs.setdefault("api_key", provider.api_key)
        kwargs.setdefault("base_url", provider.base_url)
        kwargs.setdefault("shutdown_grace", 5.0)
        return WhizRouter(**kwargs)

    return build


@pytest.fixture
def serve(
    aiohttp_client: AiohttpClient,
) -> Callable[[WhizRouter], Awaitable[BotClient]]:
    """Start a bot behind a real HTTP test server and return a client for it."""

    async def start(app: WhizRouter) -> BotClient:
        return await aiohttp_client(app.make_web_app())

    return start


@pytest.fixture(params=["attached", "standalone"])
async def serve_both(
    request: pytest.FixtureRequest, aiohttp_client: AiohttpClient
) -> AsyncIterator[Callable[[WhizRouter], Awaitable[BotClient]]]:
    """Like ``serve``, once attached to an aiohttp app and once on the hand-routed low-level
    server of ``whizrouter run`` (whose app this fixture starts and stops)."""
    started: list[WhizRouter] = []

    async def start(app: WhizRouter) -> BotClient:
        if request.param == "attached":
            return await aiohttp_client(app.make_web_app())
        await app.start()
        started.append(app)
        return await aiohttp_client(RawTestServer(request_handler(app)))  # type: ignore[arg-type]

    yield start
    for app in started:
        await app.stop()


async def raw_http(host: str, port: int, request: bytes) -> bytes:
    """Send raw bytes to a server (a request aiohttp's client would refuse to send); return
    everything it answers before closing."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
