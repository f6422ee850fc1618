"""The session's ``nats-server -js`` for tests, and unique stream names to share it.

Tests import the ``nats_url`` fixture from here (``from tests.natsserver import nats_url``).
The server (``whizrouter.testing.NatsServer``) is shared by the whole session to keep the
suite fast; tests isolate themselves with a unique stream name per test (``unique_stream``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from whizrouter.testing import NatsServer


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """The URL of a JetStream-enabled ``nats-server`` shared by the whole test session."""
    server = NatsServer()
    try:
        yield server.start()
    finally:
        server.stop()


def unique_stream(prefix: str = "T") -> str:
    """A stream name no other test uses, so tests can share one server."""
    return f"{prefix}{uuid.uuid4().hex[:12].upper()}"
