"""The dispatch benchmark, without HTTP: from the inbox to a no-op handler.

::

    python -m benchmarks.dispatch_bench --backend memory|sqlite [--events N]
        [--conversations 10 1000 100000] [--latency-events M]

Throughput: for each conversation count, a fresh app with a fresh inbox gets ``N`` one-message
events appended before its dispatcher starts (``Inbox.append``, in batches); the clock runs
from ``start()`` until the no-op handler has run ``N`` times. Event ``i`` belongs to
conversation ``i % conversations``.

Latency: a running app is fed ``M`` one-message callbacks (``WhizRouter.feed``, which is what
the receiver does before its 200) about a millisecond apart; for each event, the time from
``feed`` returning to its handler starting.

The process prints one ``WHIZBENCH {...}`` line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmarks.processes import RESULT_PREFIX
from benchmarks.scenarios import build_scenarios
from benchmarks.servers import new_bot
from whizrouter import Context, Message, RawEvent
from whizrouter.defaults import DEFAULT_MAX_BACKLOG
from whizrouter.payloads import split_callback

#: Events appended per ``Inbox.append`` call while preloading.
PRELOAD_BATCH = 1000


def make_events(count: int, conversations: int, nonce: str) -> list[RawEvent]:
    """``count`` one-message events (the on-premises text fixture) over ``conversations``."""
    scenario = build_scenarios()["onprem"]
    events: list[RawEvent] = []
    for number in range(1, count + 1):
        # Request n goes to conversation n % conversations (one slot per request).
        payload = orjson.loads(scenario.render(nonce, number, conversations))
        events.extend(split_callback(payload))
    return events


def inbox_url(backend: str, workdir: Path, label: str) -> str:
    """A fresh inbox of ``backend``: a new file in ``workdir`` for sqlite."""
    if backend == "memory":
        return "memory"
    return f"sqlite:///{workdir / (label + '.db')}"


async def throughput(
    backend: str, events: int, conversations: int, workdir: Path
) -> dict[str, Any]:
    """Events per second from a preloaded inbox to a no-op handler."""
    app = new_bot(
        inbox_url(backend, workdir, f"throughput-{conversations}"),
        max_backlog=max(events, DEFAULT_MAX_BACKLOG),
    )
    done = asyncio.Event()
    handled = 0

    @app.on_message()
    async def noop(message: Message, ctx: Context) -> None:
        nonlocal handled
        handled += 1
        if handled == events:
            done.set()

    batch = make_events(events, conversations, f"t{conversations}")
    await app.inbox.open()
    preload_start = time.perf_counter()
    for first in range(0, len(batch), PRELOAD_BATCH):
        await app.inbox.append(batch[first : first + PRELOAD_BATCH])
    preload_seconds = time.perf_counter() - preload_start
    del batch
    gc.collect()
    start = time.perf_counter()
    async with app:
        await done.wait()
        seconds = time.perf_counter() - start
        dispatcher = app.dispatcher
        assert dispatcher is not None
    return {
        "conversations": conversations,
        "events": events,
        "handled": handled,
        "dispatcher_handled": dispatcher.handled,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "us_per_event": seconds / events * 1e6,
        "preload_events_per_s": events / preload_seconds,
    }


async def latency(backend: str, events: int, workdir: Path) -> dict[str, Any]:
    """Milliseconds from ``feed`` returning (the 200) to the handler starting, per event."""
    app = new_bot(inbox_url(backend, workdir, "latency"))
    stored_at: dict[str, float] = {}
    started_at: dict[str, float] = {}
    done = asyncio.Event()

    @app.on_message()
    async def record(message: Message, ctx: Context) -> None:
        started_at[ctx.event_id] = time.perf_counter()
        if len(started_at) == events:
            done.set()

    scenario = build_scenarios()["onprem"]
    async with app:
        for number in range(1, events + 1):
            body = scenario.render("latency", number)
            key = "m:" + scenario.message_id("latency", number, 0)
            await app.feed(body)
            stored_at[key] = time.perf_counter()
            await asyncio.sleep(0.001)
        await asyncio.wait_for(done.wait(), 60)
    ordered = sorted(started_at[key] - stored_at[key] for key in started_at)
    return {
        "events": events,
        "handled": len(started_at),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[max(0, round(0.99 * len(ordered)) - 1)] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def run(
    backend: str, events: int, conversations: Sequence[int], latency_events: int
) -> dict[str, Any]:
    """Every throughput measurement, then the latency one, in a scratch directory."""
    with tempfile.TemporaryDirectory(prefix="whizbench-dispatch-") as scratch:
        workdir = Path(scratch)
        rates = []
        for count in conversations:
            rates.append(await throughput(backend, events, count, workdir))
            gc.collect()
        delay = await latency(backend, latency_events, workdir)
    return {"backend": backend, "throughput": rates, "latency": delay}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the dispatch benchmark of one backend and print its result line.

    Args:
        argv: ``--backend``, ``--events``, ``--conversations``, ``--latency-events``.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dispatch_bench")
    parser.add_argument("--backend", choices=("memory", "sqlite"), required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, nargs="+", default=[10, 1000, 100_000])
    parser.add_argument("--latency-events", type=int, default=2000)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.backend, args.events, args.conversations, args.latency_events))
    sys.stdout.write(RESULT_PREFIX + orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
