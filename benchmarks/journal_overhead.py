"""What the send journal adds to a handler's ``ctx.reply``, on the sqlite inbox.

Starts a :class:`~whizrouter.testing.FakeProvider` on loopback and opens a sqlite inbox in a
temporary directory, then times ``ctx.reply`` of a fresh ``Context`` per send (one event, one
reply: a first run, which journals each send) with the journal on and off, in alternating
rounds so drift hits both alike, in wall-clock time and in CPU time of the process (all its
threads: the loop, the fake provider and the inbox's writer; steadier than wall-clock time on
a loaded machine). Two loads: one send at a time (each journaled send waits
for its own commit), and ``--concurrency`` handlers sending at once (as a busy bot's
conversations do, sharing group commits). Prints the median microseconds per send of each and
their ratio; the target is a ratio within 1.15x.

Run it with::

    python -m benchmarks.journal_overhead            # 400 sends x 6 rounds, 1 and 16 at once
    python -m benchmarks.journal_overhead --smoke    # a few sends: checks that it runs

The fake provider runs in the same process and event loop, as in ``client_overhead``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from itertools import count
from pathlib import Path

from whizrouter.backoff import RetryPolicy
from whizrouter.client import WhizardClient
from whizrouter.context import Context
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.send_journal import SendJournals
from whizrouter.testing import FakeProvider

TO = "4915112345678"
TEXT = "hello from the journal benchmark"
TARGET = 1.15

_events = count()


async def _round(
    client: WhizardClient, journals: SendJournals | None, sends: int, concurrency: int
) -> tuple[float, float]:
    async def handler() -> None:
        key = f"m:bench-{next(_events)}"
        ctx = Context(
            event=None,
            client=client,
            contact=None,
            attempt=1,
            conversation=TO,
            event_id=key,
            kind="message",
            send_journals=journals,
        )
        await ctx.reply(TEXT)

    async def worker(share: int) -> None:
        for _ in range(share):
            await handler()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(sends // concurrency) for _ in range(concurrency)))
    return time.perf_counter() - start, time.process_time() - cpu


async def run(sends: int, rounds: int, concurrency: int) -> tuple[float, float, float, float]:
    """Time both sides; return their median microseconds per send: wall-clock (journaled,
    plain), then CPU (journaled, plain)."""
    sends -= sends % concurrency
    with tempfile.TemporaryDirectory() as directory:
        inbox = SqliteInbox(Path(directory) / "inbox.db")
        await inbox.open()
        journals = SendJournals(lambda: inbox)
        try:
            async with FakeProvider() as fake:
                client = WhizardClient(
                    fake.api_key, fake.base_url, "onprem", retry=RetryPolicy(attempts=0)
                )
                async with client:

                    async def journaled() -> tuple[float, float]:
                        fake.reset()
                        return await _round(client, journals, sends, concurrency)

                    async def plain() -> tuple[float, float]:
                        fake.reset()
                        return await _round(client, None, sends, concurrency)

                    await journaled()  # warm up both: connections, caches, the writer
                    await plain()
                    journaled_times: list[tuple[float, float]] = []
                    plain_times: list[tuple[float, float]] = []
                    for index in range(rounds):
                        if index % 2 == 0:
                            journaled_times.append(await journaled())
                            plain_times.append(await plain())
                        else:
                            plain_times.append(await plain())
                            journaled_times.append(await journaled())
        finally:
            await inbox.close()
    per_send = 1e6 / sends

    def median(times: list[tuple[float, float]], which: int) -> float:
        return statistics.median(t[which] for t in times) * per_send

    return (
        median(journaled_times, 0),
        median(plain_times, 0),
        median(journaled_times, 1),
        median(plain_times, 1),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the result; returns the exit code (0 unless it crashed).

    Args:
        argv: command-line arguments (``--sends``, ``--rounds``, ``--concurrency``,
            ``--smoke``).
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.journal_overhead")
    parser.add_argument("--sends", type=int, default=400, help="sends per round (default 400)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per side (default 6)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="handlers sending at once (default 16)"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks it works")
    args = parser.parse_args(argv)
    sends, rounds = (8, 2) if args.smoke else (max(args.sends, 1), max(args.rounds, 1))
    print(f"send journal overhead on sqlite: {sends} sends x {rounds} rounds per side")
    for concurrency in sorted({1, max(1, min(args.concurrency, sends))}):
        figures = asyncio.run(run(sends, rounds, concurrency))
        for what, journaled_us, plain_us in (("wall", *figures[:2]), ("cpu ", *figures[2:])):
            ratio = journaled_us / plain_us
            verdict = "within" if ratio <= TARGET else "ABOVE"
            print(
                f"  {concurrency:>3} at once, {what}: journaled {journaled_us:7.1f} us/send, "
                f"plain {plain_us:7.1f} us/send, ratio {ratio:.2f}x "
                f"({verdict} the {TARGET}x target)"
            )
    if args.smoke:
        print("  (smoke run: too short to mean anything)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
