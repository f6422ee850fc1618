"""Per-event counters in KV that JetStream's delivery count cannot give: the NATS inbox's
``<stream>_SPARED`` and ``<stream>_RUNS`` buckets.

JetStream counts every delivery of a message, including one a worker fetched and never
started, or handed back at a clean stop without starting it. Counting deliveries as attempts
would dead-letter an event that waited behind a slow conversation through a few deploys, or
that a killed worker only held, like an event that kills the process. So:

- ``spared[seq]``: deliveries known not to need counting. Before a clean stop naks its
  events, the worker adds one for each event it holds: those it never started, and those
  whose run it counted in ``runs`` already.
- ``runs[seq]``: handler runs known to have started and not succeeded: failed runs, runs
  cut short by a clean stop, and runs of an event a crashed worker had held, counted before
  they start (``NatsInbox.count_run``). This is the event's ``attempts``.

When a message comes back (``num_delivered`` above 1), a delivery neither spared nor counted
means a worker died holding it: the event comes out ``maybe_ran``. Keys expire with the
dedupe window. First deliveries never look the buckets up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace

import nats.js.errors
from nats.js.kv import KeyValue

from whizrouter.inbox.base import StoredEvent

_CONCURRENT_UPDATES = 64


async def with_counted_runs(event: StoredEvent, *, spared: KeyValue, runs: KeyValue) -> StoredEvent:
    """A fetched event, whose ``attempts`` count every earlier delivery, as the dispatcher
    gets it: a redelivery's attempts are its counted runs, and it is ``maybe_ran`` when a
    delivery was neither spared nor counted (a worker died holding it)."""
    earlier = event.attempts
    if not earlier:
        return event
    spared_count = await count_of(spared, event.seq)
    run_count = await count_of(runs, event.seq)
    # A redelivery, much rarer than a first delivery: a changed copy is cheap enough.
    return replace(event, attempts=run_count, maybe_ran=earlier > spared_count)


async def count_of(bucket: KeyValue, seq: int) -> int:
    """The counter of event ``seq`` in ``bucket`` (0 when there is none)."""
    try:
        entry = await bucket.get(str(seq))
    except nats.js.errors.KeyNotFoundError:  # also a deleted or expired key
        return 0
    try:
        return int(entry.value or b"0")
    except ValueError:  # not written by whizrouter: count nothing
        return 0


async def set_count(bucket: KeyValue, seq: int, count: int) -> None:
    """Set the counter of event ``seq``."""
    await bucket.put(str(seq), str(count).encode())


async def add_one(bucket: KeyValue, seqs: Iterable[int]) -> None:
    """Add one to the counter of each of ``seqs`` (a few round trips at a time).

    Only the worker that holds an event writes its keys, so a read then a write is enough.
    """
    gate = asyncio.Semaphore(_CONCURRENT_UPDATES)

    async def bump(seq: int) -> None:
        async with gate:
            await set_count(bucket, seq, await count_of(bucket, seq) + 1)

    await asyncio.gather(*(bump(seq) for seq in seqs))
