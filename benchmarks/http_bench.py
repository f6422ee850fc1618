"""The HTTP benchmark: each server in its own process, under the same load, in rounds.

For every scenario and round, all servers start at once (each a fresh process, the sqlite one
with a fresh file); then, one server at a time, in alternating order from round to round: a
warm-up window, a measured window, a wait until every stored event was handled, a check that
the handlers ran exactly once per event of every callback answered 200, and a stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.load import LoadResult, run_builtin, run_wrk, wrk_script
from benchmarks.processes import ROOT, Pinning, child_env, python_module
from benchmarks.scenarios import Scenario

#: The servers, baseline first: ratios are taken against it.
SERVERS = ("baseline", "handwritten", "typed", "durable", "memory", "sqlite")
#: Servers the runner measures only when asked (``--servers``): tuned variants, not what a
#: user runs, printed beside the others and labelled.
TUNED_SERVERS = ("sqlite-aged",)
BASELINE = "baseline"
#: Served by uvicorn (``benchmarks.asgi_servers``); run only when named with ``--servers``.
ASGI_SERVERS = ("asgi-baseline", "asgi-typed", "asgi")
#: The baseline each server is paired with, when it is not ``BASELINE``.
PAIRED_BASELINE = {"asgi": "asgi-baseline", "asgi-typed": "asgi-baseline"}

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How each server is driven.

    Attributes:
        client: ``wrk`` or ``builtin``.
        warmup: seconds of unmeasured load first (0 for none).
        duration: seconds of the measured window.
        connections: concurrent connections.
        rounds: how many times every server is measured.
        pinning: where the processes run.
        python_gc: whizrouter servers keep Python's collector settings instead of the tuning
            ``whizrouter run`` applies.
        asyncio_loop: whizrouter servers run on asyncio's own loop instead of uvloop.
        status_handler: whizrouter servers' bots have a status handler; without one they
            store no statuses (and handle only the messages).
    """

    client: str
    warmup: float
    duration: float
    connections: int
    rounds: int
    pinning: Pinning
    python_gc: bool = False
    asyncio_loop: bool = False
    status_handler: bool = True


@dataclass(frozen=True, slots=True)
class DispatchCheck:
    """Whether a server really handled what it acknowledged.

    Attributes:
        ok: callbacks the server answered 200 (warm-up and measured window).
        client_ok: 2xx answers the load generator received; a request cut off at the end of
            a window may be answered without the client counting it.
        handled: events its handlers ran for (None: the baseline has no handler).
        expected: ``ok`` times the events per callback (None for the baseline).
        dispatcher_handled: whizrouter's own count of handled events, if it is whizrouter.
        passed: handled equals expected (and the counters agree).
        note: what went wrong, if anything.
        loop: the event loop that served it (``asyncio`` or ``uvloop``).
    """

    ok: int
    client_ok: int
    handled: int | None
    expected: int | None
    dispatcher_handled: int | None
    passed: bool
    note: str
    loop: str


class ServerProcess:
    """One benchmarked server (``python -m benchmarks.servers KIND``) as a child process."""

    def __init__(
        self,
        kind: str,
        workdir: Path,
        pinning: Pinning,
        label: str,
        *,
        python_gc: bool = False,
        asyncio_loop: bool = False,
        status_handler: bool = True,
    ) -> None:
        self.kind = kind
        self._python_gc = python_gc
        self._asyncio_loop = asyncio_loop
        self._status_handler = status_handler
        self.label = label
        self._workdir = workdir
        self._pinning = pinning
        self._log = workdir / f"{label}.log"
        self._process: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, wait_seconds: float = 60.0) -> None:
        """Start the process and wait until it announces its port.

        Raises:
            RuntimeError: the server exited or did not announce its port in time.
        """
        args = [self.kind]
        if self.kind in ("durable", "sqlite", "sqlite-aged"):
            args += ["--db", str(self._workdir / f"{self.label}.db")]
        if self._python_gc:
            args.append("--python-gc")
        if self._asyncio_loop:
            args.append("--asyncio-loop")
        if not self._status_handler:
            args.append("--no-status-handler")
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self._pinning.server(
                    python_module(
                        "benchmarks.asgi_servers"
                        if self.kind in ASGI_SERVERS
                        else "benchmarks.servers",
                        *args,
                    )
                ),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=child_env(),
                cwd=ROOT,
            )
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), wait_seconds)
        except TimeoutError:
            line = b""
        if not line:
            await self.stop()
            raise RuntimeError(f"server {self.label} did not start:\n{self.log_tail()}")
        self.port = int(orjson.loads(line)["port"])

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """The server's counters (``GET /bench/stats``)."""
        async with session.get(self.url + "/bench/stats") as response:
            response.raise_for_status()
            stats: dict[str, Any] = orjson.loads(await response.read())
            return stats

    async def settled_stats(
        self, session: aiohttp.ClientSession, wait_seconds: float
    ) -> tuple[dict[str, Any], bool]:
        """Wait until nothing is pending and the counters stopped moving; return them.

        Returns:
            the last counters read, and whether they settled within ``wait_seconds``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        previous: tuple[Any, ...] | None = None
        while True:
            stats = await self.stats(session)
            counts = (stats["ok"], stats["handled"], stats["dispatcher_handled"], stats["pending"])
            if stats["pending"] == 0 and counts == previous:
                return stats, True
            if loop.time() > deadline:
                return stats, False
            previous = counts
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Ask the server to stop (SIGTERM) and wait; kill it if it hangs."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.communicate(), 60)
        except TimeoutError:
            process.kill()
            await process.communicate()

    def log_tail(self, limit: int = 4000) -> str:
        """The end of what the server wrote to stderr."""
        try:
            return self._log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def scenario_script(scenario: Scenario, plan: LoadPlan, workdir: Path) -> Path | None:
    """Write the scenario's wrk script into ``workdir`` (None for the built-in client)."""
    if plan.client != "wrk":
        return None
    script = workdir / f"{scenario.name}.lua"
    script.write_text(wrk_script(scenario))
    return script


async def drive(
    server: ServerProcess,
    scenario: Scenario,
    plan: LoadPlan,
    script: Path | None,
    nonce: str,
    seconds: float,
) -> LoadResult:
    """Load ``server`` with ``scenario`` for ``seconds``, with ``plan``'s client and connections."""
    url = server.url + "/webhook"
    if plan.client == "wrk":
        assert script is not None
        return await run_wrk(
            url,
            script,
            nonce=nonce,
            seconds=max(1, round(seconds)),
            connections=plan.connections,
            pinning=plan.pinning,
        )
    return await run_builtin(
        url, scenario, nonce=nonce, seconds=seconds, connections=plan.connections
    )


async def check_dispatch(
    server: ServerProcess,
    session: aiohttp.ClientSession,
    scenario: Scenario,
    windows: Sequence[LoadResult],
    connections: int,
    wait_seconds: float,
) -> DispatchCheck:
    """Once ``server`` settled: did its handlers run once per event of every 200?

    ``windows`` are the load results of everything it was sent; ``connections`` per window
    bounds the answers the client may not have counted.
    """
    stats, settled = await server.settled_stats(session, wait_seconds)
    ok, handled = int(stats["ok"]), stats["handled"]
    client_ok = sum(window.ok for window in windows)
    notes = []
    if not settled:
        notes.append(f"still {stats['pending']} events pending after {wait_seconds:g} s")
    # Requests cut off when a window ends are answered, just not counted by the client.
    if not client_ok <= ok <= client_ok + connections * len(windows):
        notes.append(f"the server counted {ok} answers 200, the client {client_ok}")
    kinds = stats["handles"]
    expected = None if handled is None else ok * scenario.handler_runs_per_request(kinds)
    if handled is not None and handled != expected:
        notes.append(f"{handled} events handled, expected {expected}")
    dispatcher_handled = stats["dispatcher_handled"]
    if dispatcher_handled is not None and dispatcher_handled != handled:
        notes.append(f"the dispatcher counted {dispatcher_handled}, the handlers {handled}")
    if ok == 0:
        notes.append("no callback was answered 200")
    return DispatchCheck(
        ok=ok,
        client_ok=client_ok,
        handled=handled,
        expected=expected,
        dispatcher_handled=dispatcher_handled,
        passed=not notes,
        note="; ".join(notes),
        loop=str(stats["loop"]),
    )


async def _measure_one(
    server: ServerProcess,
    session: aiohttp.ClientSession,
    scenario: Scenario,
    plan: LoadPlan,
    script: Path | None,
    nonce: str,
) -> dict[str, Any]:
    windows: list[LoadResult] = []
    warmup = None
    first = await server.stats(session)
    if plan.warmup > 0:
        warmup = await drive(server, scenario, plan, script, nonce + "w", plan.warmup)
        windows.append(warmup)
    loop = asyncio.get_running_loop()
    before, started = await server.stats(session), loop.time()
    load = await drive(server, scenario, plan, script, nonce + "m", plan.duration)
    after, wall = await server.stats(session), loop.time() - started
    windows.append(load)
    check = await check_dispatch(
        server, session, scenario, windows, plan.connections, wait_seconds=300
    )
    last = await server.stats(session)
    window_cpu = after["cpu_s"] - before["cpu_s"]
    return {
        "load": load.as_dict(),
        "cpu": {
            # The share of a core the server got in the measured window: well below 1 means
            # something else ran on its core (or the server waited on I/O).
            "core_share": window_cpu / wall if wall > 0 else None,
            # Everything the server did for every callback it acknowledged (parsing, storing
            # and, after the window, handling the events still waiting), per callback.
            "us_per_callback": (last["cpu_s"] - first["cpu_s"]) / check.ok * 1e6
            if check.ok
            else None,
        },
        "warmup": warmup.as_dict() if warmup else None,
        "check": asdict(check),
    }


async def run_scenario(
    scenario: Scenario,
    servers: Sequence[str],
    plan: LoadPlan,
    workdir: Path,
    progress: Progress,
) -> dict[str, Any]:
    """Measure every server on one scenario over ``plan.rounds`` rounds.

    Returns:
        per server: the raw figures of each round and their medians (see ``summarise``).
    """
    script = scenario_script(scenario, plan, workdir)
    rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in servers}
    async with aiohttp.ClientSession() as session:
        for number in range(1, plan.rounds + 1):
            order = list(servers) if number % 2 else list(reversed(servers))
            processes = {
                kind: ServerProcess(
                    kind,
                    workdir,
                    plan.pinning,
                    f"{scenario.name}-r{number}-{kind}",
                    python_gc=plan.python_gc,
                    asyncio_loop=plan.asyncio_loop,
                    status_handler=plan.status_handler,
                )
                for kind in order
            }
            try:
                await asyncio.gather(*(process.start() for process in processes.values()))
                for kind in order:
                    process = processes[kind]
                    result = await _measure_one(
                        process, session, scenario, plan, script, f"{scenario.name}{number}{kind}"
                    )
                    await process.stop()
                    if not result["check"]["passed"]:
                        result["check"]["log"] = process.log_tail()
                    rounds[kind].append(result)
                    load = result["load"]
                    cpu = result["cpu"]
                    progress(
                        f"  {scenario.name:<9} round {number}  {kind:<12} "
                        f"{load['rps']:9.0f} req/s  p50 {load['p50_ms']:6.2f} ms  "
                        f"p99 {load['p99_ms']:6.2f} ms  "
                        f"core {cpu['core_share'] or 0:4.0%}  "
                        f"{cpu['us_per_callback'] or 0:6.0f} us CPU/callback  "
                        + check_verdict(result["check"])
                    )
            finally:
                for process in processes.values():
                    with contextlib.suppress(Exception):
                        await process.stop()
    return summarise(rounds)


def summarise(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over the rounds, and ratios to the baseline measured in the same run."""
    summary: dict[str, Any] = {}
    for kind, results in rounds.items():
        loads = [result["load"] for result in results]
        summary[kind] = {
            "median_rps": statistics.median(load["rps"] for load in loads),
            "median_p50_ms": statistics.median(load["p50_ms"] for load in loads),
            "median_p99_ms": statistics.median(load["p99_ms"] for load in loads),
            "median_cpu_us": median_or_none(result["cpu"]["us_per_callback"] for result in results),
            "median_core_share": median_or_none(result["cpu"]["core_share"] for result in results),
            "non_2xx": sum(load["non_2xx"] for load in loads),
            "socket_errors": sum(load["socket_errors"] for load in loads),
            "dispatch_checked": all(result["check"]["passed"] for result in results),
            "rounds": results,
        }
    base = summary.get(BASELINE)
    for figures in summary.values():
        if base is None:
            figures.update(rps_ratio=None, p50_ratio=None, p99_ratio=None, cpu_ratio=None)
            continue
        figures["rps_ratio"] = _ratio(figures["median_rps"], base["median_rps"])
        figures["p50_ratio"] = _ratio(figures["median_p50_ms"], base["median_p50_ms"])
        figures["p99_ratio"] = _ratio(figures["median_p99_ms"], base["median_p99_ms"])
        figures["cpu_ratio"] = (
            _ratio(figures["median_cpu_us"], base["median_cpu_us"])
            if figures["median_cpu_us"] is not None and base["median_cpu_us"] is not None
            else None
        )
    return summary


def _ratio(value: float, reference: float) -> float | None:
    return value / reference if reference else None


def check_verdict(check: dict[str, Any]) -> str:
    """The end of a progress line: whether the server handled what it acknowledged."""
    return "dispatch ok" if check["passed"] else "CHECK FAILED: " + check["note"]


def median_or_none(values: Iterable[float | None]) -> float | None:
    """The median of the known values, or None when none is known."""
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None
