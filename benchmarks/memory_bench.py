"""The memory benchmark: the resident size of a bot with a large backlog waiting.

::

    python -m benchmarks.memory_bench --backend sqlite|memory [--events N]

A running app (sqlite: a fresh file) whose only handler blocks is fed ``N`` one-message
callbacks through ``WhizRouter.feed`` in batches of 100 messages; its dispatcher claims what
it may hold and every handler waits. Once the dispatcher stops claiming, the process reads its
``VmRSS`` (and peak ``VmHWM``) from ``/proc/self/status``, releases the handlers and stops.
The process prints one ``WHIZBENCH {...}`` line with the figures, in MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmarks.dispatch_bench import inbox_url
from benchmarks.processes import RESULT_PREFIX
from benchmarks.scenarios import build_scenarios
from benchmarks.servers import new_bot
from whizrouter import Context, Message
from whizrouter.defaults import DEFAULT_MAX_BACKLOG

#: Messages per fed callback.
CALLBACK_SIZE = 100


def read_status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); 0 where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def callbacks(count: int) -> list[bytes]:
    """``count`` text messages (the on-premises fixture) as callbacks of up to 100 each."""
    template = build_scenarios()["onprem"]
    bodies = []
    for first in range(1, count + 1, CALLBACK_SIZE):
        numbers = range(first, min(first + CALLBACK_SIZE, count + 1))
        parsed = [orjson.loads(template.render("memory", n)) for n in numbers]
        bodies.append(
            orjson.dumps(
                {
                    "contacts": [c for p in parsed for c in p["contacts"]],
                    "messages": [m for p in parsed for m in p["messages"]],
                }
            )
        )
    return bodies


def _size_of(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.iterdir())


async def _quiet(read: Any, period: float = 0.2, checks: int = 3) -> None:
    """Return once ``read()`` gave the same value ``checks`` times, ``period`` apart."""
    last, same = read(), 0
    while same < checks:
        await asyncio.sleep(period)
        value = read()
        same = same + 1 if value == last else 0
        last = value


async def measure(backend: str, events: int) -> dict[str, Any]:
    """RSS with ``events`` waiting in the inbox of a running app whose handlers block."""
    gc.collect()
    idle_kib = read_status_kib("VmRSS")
    release = asyncio.Event()
    started = 0

    with tempfile.TemporaryDirectory(prefix="whizbench-memory-") as scratch:
        app = new_bot(
            inbox_url(backend, Path(scratch), "memory"),
            max_backlog=max(events, DEFAULT_MAX_BACKLOG),
        )

        @app.on_message()
        async def blocked(message: Message, ctx: Context) -> None:
            nonlocal started
            started += 1
            await release.wait()

        bodies = callbacks(events)
        async with app:
            stored = 0
            for body in bodies:
                stored += await app.feed(body)
            del bodies
            dispatcher = app.dispatcher
            assert dispatcher is not None
            await _quiet(lambda: (dispatcher.in_flight, started))
            gc.collect()
            rss_kib = read_status_kib("VmRSS")
            peak_kib = read_status_kib("VmHWM")
            backlog = app.inbox.backlog()
            in_flight = dispatcher.in_flight
            waiting = started
            release.set()
        db_bytes = _size_of(Path(scratch))
    return {
        "backend": backend,
        "events": events,
        "stored": stored,
        "backlog": backlog,
        "claimed_in_memory": in_flight,
        "handlers_waiting": waiting,
        "idle_rss_mib": idle_kib / 1024,
        "rss_mib": rss_kib / 1024,
        "peak_rss_mib": peak_kib / 1024,
        "files_mib": db_bytes / 2**20,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the memory benchmark of one backend and print its result line.

    Args:
        argv: ``--backend``, ``--events``.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_bench")
    parser.add_argument("--backend", choices=("memory", "sqlite"), required=True)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.backend, args.events))
    sys.stdout.write(RESULT_PREFIX + orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
