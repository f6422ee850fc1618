"""``post_until_stored``: post a callback to a running bot as the provider does.

The provider posts a callback and, on anything but a 200 (a 503 while the bot's backlog is
full, a connection refused while it restarts, a timeout), posts it again later: a 200 means
the bot stored it. Load tests and benchmarks of a bot running as its own process post this
way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp


async def post_until_stored(
    session: aiohttp.ClientSession,
    url: str,
    body: Mapping[str, Any],
    *,
    attempts: int | None = 50,
    pause: float = 0.1,
    timeout: float = 10.0,
) -> int:
    """POST ``body`` as JSON to ``url`` until it is answered 200, ``pause`` seconds apart.

    Args:
        session: the HTTP session to post with.
        url: the bot's webhook, such as ``http://127.0.0.1:8080/webhook``.
        body: the callback body (see :func:`~whizrouter.testing.text_callback`).
        attempts: how many tries at most; ``None`` for no limit.
        pause: seconds between tries (the provider's own retry pace).
        timeout: seconds each try may take.

    Returns:
        How many tries were refused before the 200 (another status, a connection error or a
        timeout).

    Raises:
        AssertionError: every one of ``attempts`` tries was refused.
    """
    refused = 0
    while attempts is None or refused < attempts:
        try:
            async with session.post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                if response.status == 200:
                    return refused
        except (aiohttp.ClientError, TimeoutError):
            pass
        refused += 1
        await asyncio.sleep(pause)
    raise AssertionError(f"{url} refused a callback {refused} times")
