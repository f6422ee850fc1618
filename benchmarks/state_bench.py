"""The conversation-state benchmark: dispatch throughput with and without ``ctx.state``.

::

    python -m benchmarks.state_bench --backend memory|sqlite [--events N]
        [--conversations C] [--rounds R]

Like ``dispatch_bench``'s throughput (a preloaded inbox, the clock from ``start()`` until the
handler ran ``N`` times), with three handlers measured alternately in the same process, ``R``
rounds each: ``plain`` counts the event in a module-level dict, ``state`` reads the
conversation's counter from ``ctx.state`` and writes it back (one read and one write per
event, committed with the ack), and ``floor`` makes the same two awaited calls on a plain
dict per conversation, keeping nothing: the least any state API of this shape (``await
data()``, ``await update()``) can cost, to read the ``state`` figure against. The result
line gives each one's best rate, in wall-clock time and in CPU time of the process (all its
threads), and the ratio state/plain (and floor/plain, in CPU time) of each round's pair, with
their median: on a machine shared with other work, neighbouring runs share its load, so the
median of the pairs is the steadier figure.
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

from benchmarks.dispatch_bench import PRELOAD_BATCH, inbox_url, make_events
from benchmarks.processes import RESULT_PREFIX
from benchmarks.servers import new_bot
from whizrouter import Context, Message
from whizrouter.defaults import DEFAULT_MAX_BACKLOG

HANDLERS = ("plain", "state", "floor")


async def throughput(
    backend: str, events: int, conversations: int, workdir: Path, label: str, *, handler: str
) -> tuple[float, float]:
    """Events per second (wall clock, CPU time) from a preloaded inbox through one of
    ``HANDLERS``."""
    app = new_bot(inbox_url(backend, workdir, label), max_backlog=max(events, DEFAULT_MAX_BACKLOG))
    done = asyncio.Event()
    handled = 0
    counts: dict[str, int] = {}

    if handler == "state":

        @app.on_message()
        async def counter(message: Message, ctx: Context) -> None:
            nonlocal handled
            data = await ctx.state.data()
            await ctx.state.update(count=data.get("count", 0) + 1)
            handled += 1
            if handled == events:
                done.set()

    elif handler == "floor":
        kept: dict[str, dict[str, int]] = {}

        async def data(conversation: str) -> dict[str, int]:
            return dict(kept.get(conversation, {}))

        async def update(conversation: str, **values: int) -> None:
            kept[conversation] = {**kept.get(conversation, {}), **values}

        @app.on_message()
        async def floor(message: Message, ctx: Context) -> None:
            nonlocal handled
            found = await data(ctx.conversation)
            await update(ctx.conversation, count=found.get("count", 0) + 1)
            handled += 1
            if handled == events:
                done.set()

    else:

        @app.on_message()
        async def plain(message: Message, ctx: Context) -> None:
            nonlocal handled
            counts[ctx.conversation] = counts.get(ctx.conversation, 0) + 1
            handled += 1
            if handled == events:
                done.set()

    batch = make_events(events, conversations, label)
    await app.inbox.open()
    for first in range(0, len(batch), PRELOAD_BATCH):
        await app.inbox.append(batch[first : first + PRELOAD_BATCH])
    del batch
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    async with app:
        await done.wait()
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    return events / seconds, events / cpu_seconds


async def run(backend: str, events: int, conversations: int, rounds: int) -> dict[str, Any]:
    """``rounds`` alternating measurements of each handler; the best of each, and the ratio."""
    rates: dict[str, list[float]] = {name: [] for name in HANDLERS}
    cpu_rates: dict[str, list[float]] = {name: [] for name in HANDLERS}
    with tempfile.TemporaryDirectory(prefix="whizbench-state-") as scratch:
        workdir = Path(scratch)
        for number in range(rounds):
            for name in HANDLERS:
                label = f"{name}-{number}"
                rate, cpu_rate = await throughput(
                    backend, events, conversations, workdir, label, handler=name
                )
                rates[name].append(rate)
                cpu_rates[name].append(cpu_rate)
                gc.collect()
    best = {name: max(values) for name, values in rates.items()}
    best_cpu = {name: max(values) for name, values in cpu_rates.items()}

    def over_plain(name: str, of: dict[str, list[float]]) -> list[float]:
        return [x / p for x, p in zip(of[name], of["plain"], strict=True)]

    pairs, cpu_pairs = over_plain("state", rates), over_plain("state", cpu_rates)
    floor_pairs = over_plain("floor", cpu_rates)
    return {
        "backend": backend,
        "events": events,
        "conversations": conversations,
        "rates": rates,
        "cpu_rates": cpu_rates,
        "best_events_per_s": best,
        "best_events_per_cpu_s": best_cpu,
        "pair_ratios": pairs,
        "cpu_pair_ratios": cpu_pairs,
        "ratio": statistics.median(pairs),
        "cpu_ratio": statistics.median(cpu_pairs),
        "floor_cpu_pair_ratios": floor_pairs,
        "floor_cpu_ratio": statistics.median(floor_pairs),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the state benchmark of one backend and print its result line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.state_bench")
    parser.add_argument("--backend", choices=("memory", "sqlite"), required=True)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.backend, args.events, args.conversations, args.rounds))
    sys.stdout.write(RESULT_PREFIX + orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
