"""Helpers shared by the NATS inbox tests: an open inbox with short timers, events, waiting.

The server itself and its ``nats_url`` fixture are ``tests.natsserver``'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from whizrouter.inbox.base import EventKind, RawEvent, StoredEvent
from whizrouter.inbox.nats import NatsInbox

ROOT = Path(__file__).resolve().parent.parent


#: Short timers so takeovers happen within a second or two.
FAST: dict[str, Any] = {"partitions": 4, "ack_wait": 1.0, "lease_ttl": 1.0}


@asynccontextmanager
async def opened(url: str, stream: str, **options: Any) -> AsyncIterator[NatsInbox]:
    """An open ``NatsInbox`` on ``stream``, closed afterwards."""
    inbox = NatsInbox([url], stream=stream, **{**FAST, **options})
    await inbox.open()
    try:
        yield inbox
    finally:
        await inbox.close()


def event(conversation: str, n: int, kind: EventKind = "message") -> RawEvent:
    """The ``n``-th event of a conversation."""
    return RawEvent(
        kind=kind,
        key=f"m:{conversation}:{n}",
        conversation=conversation,
        body=b'{"n": %d}' % n,
    )


async def claim_n(inbox: NatsInbox, count: int, timeout: float = 10.0) -> list[StoredEvent]:
    """Claim until ``count`` events arrived; fail clearly on timeout."""
    got: list[StoredEvent] = []

    async def collect() -> None:
        while len(got) < count:
            got.extend(await inbox.claim(count - len(got)))

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise AssertionError(f"claimed {len(got)} of {count} events in {timeout} s") from None
    return got


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    """Wait until ``check`` holds, polling the server; fail clearly on timeout."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
