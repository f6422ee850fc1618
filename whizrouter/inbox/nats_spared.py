"""Hand-backs that cost no attempt: the NATS inbox's ``<stream>_SPARED`` bucket.

JetStream counts every delivery of a message, including one that a worker handed back at a
clean stop without starting it. Left alone, an event waiting behind a slow conversation
through a few deploys would reach the retry budget and be dead-lettered like an event that
kills the process. So before a clean stop naks its events, the worker adds one to
``spared[seq]`` for each event it knows never started: those it fetched and never handed to
the dispatcher, and those the dispatcher says it never started. When a message comes back
(``num_delivered`` above 1), its attempts are the earlier deliveries minus the spared ones.
After a crash nothing is spared, so every earlier delivery counts, as with the sqlite inbox.

Keys expire with the dedupe window; an event that waits longer only counts its hand-backs
again. First deliveries never look the bucket up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import nats.js.errors
from nats.js.kv import KeyValue

_CONCURRENT_UPDATES = 64


async def spared_count(bucket: KeyValue, seq: int) -> int:
    """How many deliveries of event ``seq`` were handed back without starting."""
    try:
        entry = await bucket.get(str(seq))
    except nats.js.errors.KeyNotFoundError:  # also a deleted or expired key
        return 0
    try:
        return int(entry.value or b"0")
    except ValueError:  # not written by whizrouter: count nothing spared
        return 0


async def spare(bucket: KeyValue, seqs: Iterable[int]) -> None:
    """Count one unstarted hand-back for each of ``seqs`` (a few round trips at a time).

    Only the worker that holds an event writes its key, so a read then a write is enough.
    """
    gate = asyncio.Semaphore(_CONCURRENT_UPDATES)

    async def bump(seq: int) -> None:
        async with gate:
            count = await spared_count(bucket, seq)
            await bucket.put(str(seq), str(count + 1).encode())

    await asyncio.gather(*(bump(seq) for seq in seqs))
