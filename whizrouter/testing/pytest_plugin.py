"""pytest fixtures for testing code that talks to the Whizard API.

Installed with whizrouter as the ``whizrouter`` pytest plugin (the ``pytest11`` entry point),
so the fixtures are available in every test suite of a project that installs whizrouter:

* ``fake_provider``: a started :class:`~whizrouter.testing.FakeProvider` (on-premises shape),
  closed after the test;
* ``whizard_client``: a :class:`~whizrouter.client.WhizardClient` pointed at ``fake_provider``,
  with its key, its shape and quick test retries;
* ``bot_tester``: a factory that runs a whole bot against its own fake provider over real
  HTTP (:class:`~whizrouter.testing.BotTester`) and stops it after the test.

They are async fixtures: they need an asyncio test runner such as pytest-aiohttp or
pytest-asyncio. When pytest-asyncio is installed its fixture decorator is used, so they also
work in its strict mode; this module itself imports neither, so loading the plugin never fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from whizrouter.app import WhizRouter
from whizrouter.client import WhizardClient
from whizrouter.testing.bot_tester import BotTester, StartBot
from whizrouter.testing.fake_provider import FakeProvider


def _async_fixture() -> Callable[[Any], Any]:
    try:
        import pytest_asyncio
    except ImportError:  # plain pytest: an asyncio runner plugin must pick these up
        return pytest.fixture
    return pytest_asyncio.fixture


_fixture = _async_fixture()


@_fixture
async def fake_provider() -> AsyncIterator[FakeProvider]:
    """A started on-premises :class:`~whizrouter.testing.FakeProvider`, closed afterwards."""
    async with FakeProvider() as fake:
        yield fake


@_fixture
async def whizard_client(fake_provider: FakeProvider) -> AsyncIterator[WhizardClient]:
    """A :class:`~whizrouter.client.WhizardClient` talking to ``fake_provider``."""
    async with fake_provider.client() as client:
        yield client


@_fixture
async def bot_tester() -> AsyncIterator[StartBot]:
    """A factory: ``bot = await bot_tester(app)`` runs ``app`` against a fake provider.

    Every bot started through it is stopped (drained) after the test.
    """
    started: list[BotTester] = []

    async def start(app: WhizRouter, **options: Any) -> BotTester:
        tester = BotTester(app, **options)
        await tester.start()
        started.append(tester)
        return tester

    yield start
    for tester in reversed(started):
        await tester.close()
