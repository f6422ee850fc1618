"""``python -m benchmarks``: every benchmark, one table, one JSON file of raw figures.

::

    python -m benchmarks                    # the full run: several minutes
    python -m benchmarks --smoke            # a second of load per server, tiny sizes
    python -m benchmarks --parts http --scenarios onprem --rounds 1

Four parts, each in its own processes:

- ``http``: the four servers of ``benchmarks.servers`` under wrk (1 thread, 64 connections),
  a warm-up and a measured window per round, 3 rounds in alternating order, each server
  checked to have handled every event it acknowledged (see ``benchmarks.http_bench``);
- ``paired``: each server loaded at the same time as a baseline on the same core, their CPU
  per callback compared, which tells the req/s ratio with far less drift (see
  ``benchmarks.paired_bench``);
- ``dispatch``: events/s from the inbox to a no-op handler, and the delay from the 200 to
  the handler's start (see ``benchmarks.dispatch_bench``);
- ``memory``: RSS with 100,000 events waiting (see ``benchmarks.memory_bench``).

The exit code is 0 when everything ran and every check passed (targets are only reported),
1 when a check failed, 2 when the run could not start (no wrk, bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import orjson

import whizrouter
from benchmarks.http_bench import ASGI_SERVERS, SERVERS, TUNED_SERVERS, LoadPlan, run_scenario
from benchmarks.load import WRK_HINT, wrk_available
from benchmarks.paired_bench import run_paired
from benchmarks.processes import ROOT, Pinning, choose_pinning, python_module, run_child
from benchmarks.report import (
    dispatch_table,
    evaluate,
    http_table,
    memory_table,
    paired_table,
    targets_table,
)
from benchmarks.scenarios import CONVERSATIONS, Scenario, build_scenarios
from whizrouter.runtime import uvloop_version

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"
PARTS = ("http", "paired", "dispatch", "memory")
BACKENDS = ("memory", "sqlite")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, with the smoke sizes filled in for ``--smoke``."""
    scenarios = list(build_scenarios())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark whizrouter against a bare aiohttp baseline and a hand-written "
        "bot; print a table and write the raw figures as JSON.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a quick run that checks everything works (figures mean nothing); "
        "falls back to a built-in load generator without wrk",
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=scenarios,
        default=None,
        help="default: all (smoke: batch)",
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS + TUNED_SERVERS + ASGI_SERVERS,
        default=list(SERVERS),
        help="default: all but the tuned variants (sqlite-aged: a file whose dedupe index "
        "holds 200,000 keys, merged every 5,000; not what a user runs) and the ASGI ones "
        "(asgi and asgi-typed, each paired with asgi-baseline, all on uvicorn)",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "builtin"),
        default="auto",
        help="load generator; auto means wrk, or builtin in a smoke run without wrk",
    )
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (smoke 1)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="warm-up seconds per server and round (default 2, smoke 0)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="measured seconds per server and round (default 5, smoke 1)",
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--python-gc",
        action="store_true",
        help="whizrouter servers keep Python's garbage collector settings instead "
        "of the tuning `whizrouter run` applies (WHIZROUTER_GC_THRESHOLD=0)",
    )
    parser.add_argument(
        "--asyncio-loop",
        action="store_true",
        help="whizrouter servers run on asyncio's own event loop instead of "
        "uvloop, which `whizrouter run` uses when installed "
        "(WHIZROUTER_LOOP=asyncio)",
    )
    parser.add_argument(
        "--no-status-handler",
        action="store_true",
        help="whizrouter servers' bots register no status handler, as a bot that only answers "
        "messages: they answer statuses 200 without storing them, and the runner expects "
        "handler runs for the messages only",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help="events per dispatch measurement (default 100,000, smoke 2,000)",
    )
    parser.add_argument(
        "--conversations",
        type=int,
        nargs="+",
        default=None,
        help="conversation counts of the dispatch benchmark "
        "(default 10 1000 100000, smoke 10 100 1000)",
    )
    parser.add_argument(
        "--latency-events",
        type=int,
        default=None,
        help="callbacks of the 200-to-handler measurement (default 2,000, smoke 100)",
    )
    parser.add_argument(
        "--memory-events",
        type=int,
        default=None,
        help="events waiting in the memory benchmark (default 100,000, smoke 2,000)",
    )
    parser.add_argument(
        "--memory-backends",
        nargs="+",
        choices=BACKENDS,
        default=None,
        help="inboxes of the memory benchmark (default both, smoke sqlite)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where the raw figures go (default {DEFAULT_OUTPUT})",
    )
    args = parser.parse_args(argv)
    smoke = args.smoke
    defaults: dict[str, Any] = {
        "scenarios": ["batch"] if smoke else scenarios,
        "rounds": 1 if smoke else 3,
        "warmup": 0.0 if smoke else 2.0,
        "duration": 1.0 if smoke else 5.0,
        "events": 2000 if smoke else 100_000,
        "conversations": [10, 100, 1000] if smoke else [10, 1000, 100_000],
        "latency_events": 100 if smoke else 2000,
        "memory_events": 2000 if smoke else 100_000,
        "memory_backends": ["sqlite"] if smoke else list(BACKENDS),
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1 or args.events < 1:
        parser.error("--rounds, --duration, --connections and --events must be positive")
    return args


def choose_client(args: argparse.Namespace) -> str | None:
    """``wrk`` or ``builtin``; None when wrk is required and missing."""
    if args.client == "builtin":
        return "builtin"
    if wrk_available():
        return "wrk"
    if args.client == "auto" and args.smoke:
        return "builtin"
    return None


Measure = Callable[
    [Scenario, Sequence[str], LoadPlan, Path, Callable[[str], None]], Awaitable[dict[str, Any]]
]


async def run_scenarios(
    args: argparse.Namespace,
    plan: LoadPlan,
    out: TextIO,
    measure: Measure,
    heading: Callable[[Scenario], str],
) -> dict[str, Any]:
    """One part that loads servers over HTTP: ``measure`` every chosen scenario in turn."""
    scenarios = build_scenarios()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="whizbench-") as scratch:
        for name in args.scenarios:
            scenario = scenarios[name]
            out.write(heading(scenario) + "\n")
            out.flush()

            def progress(line: str) -> None:
                out.write(line + "\n")
                out.flush()

            results[name] = await measure(scenario, args.servers, plan, Path(scratch), progress)
    return results


async def run_http(args: argparse.Namespace, plan: LoadPlan, out: TextIO) -> dict[str, Any]:
    """The HTTP part: every scenario, every server, every round."""
    return await run_scenarios(
        args,
        plan,
        out,
        run_scenario,
        lambda scenario: (
            f"{scenario.name}: {scenario.title} ({scenario.events_per_request} "
            f"events per callback, fresh ids, {CONVERSATIONS:,} conversations)"
        ),
    )


async def run_pairs(args: argparse.Namespace, plan: LoadPlan, out: TextIO) -> dict[str, Any]:
    """The paired part: every scenario, every server beside a baseline, every round."""
    return await run_scenarios(
        args,
        plan,
        out,
        run_paired,
        lambda scenario: f"{scenario.name}, paired with the baseline on one core:",
    )


async def run_dispatch(args: argparse.Namespace, pinning: Pinning, out: TextIO) -> dict[str, Any]:
    """The dispatch part: one child process per backend."""
    results: dict[str, Any] = {}
    for backend in BACKENDS:
        out.write(f"dispatch: {backend} inbox, {args.events:,} events ...\n")
        out.flush()
        command = python_module(
            "benchmarks.dispatch_bench",
            "--backend",
            backend,
            "--events",
            str(args.events),
            "--conversations",
            *map(str, args.conversations),
            "--latency-events",
            str(args.latency_events),
        )
        results[backend] = await run_child(pinning.server(command), wait_seconds=1800)
    return results


async def run_memory(args: argparse.Namespace, pinning: Pinning, out: TextIO) -> dict[str, Any]:
    """The memory part: one child process per backend."""
    results: dict[str, Any] = {}
    for backend in args.memory_backends:
        out.write(f"memory: {backend} inbox, {args.memory_events:,} events waiting ...\n")
        out.flush()
        command = python_module(
            "benchmarks.memory_bench", "--backend", backend, "--events", str(args.memory_events)
        )
        results[backend] = await run_child(pinning.server(command), wait_seconds=1800)
    return results


def failed_checks(results: dict[str, Any]) -> list[str]:
    """Everything that did not run as it must (as opposed to a missed target)."""
    failures = []
    for part, unit in (("http", "round"), ("paired", "pair")):
        for scenario, servers in results.get(part, {}).items():
            for kind, figures in servers.items():
                for number, result in enumerate(figures["rounds"], 1):
                    if not result["check"]["passed"]:
                        failures.append(
                            f"{part} {scenario} {kind} {unit} {number}: {result['check']['note']}"
                        )
    for backend, figures in results.get("dispatch", {}).items():
        for rate in figures["throughput"]:
            if rate["dispatcher_handled"] != rate["events"] or rate["handled"] != rate["events"]:
                failures.append(
                    f"dispatch {backend}: {rate['dispatcher_handled']} of "
                    f"{rate['events']} events handled"
                )
        if figures["latency"]["handled"] != figures["latency"]["events"]:
            failures.append(f"dispatch latency {backend}: not every event was handled")
    for backend, figures in results.get("memory", {}).items():
        if figures["stored"] != figures["events"]:
            failures.append(
                f"memory {backend}: {figures['stored']} of {figures['events']} events stored"
            )
    return failures


def describe_source() -> dict[str, Any]:
    """The commit measured, and which of its files were modified (None outside a git tree)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "whizrouter"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "modified": None}
    return {"commit": commit, "modified": [line[3:] for line in status.splitlines()]}


def describe_machine(args: argparse.Namespace, client: str, pinning: Pinning) -> dict[str, Any]:
    """Where and how the figures were taken, for the JSON results."""
    return {
        "source": describe_source(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "orjson": orjson.__version__,
        "whizrouter": whizrouter.__version__,
        "machine": platform.machine(),
        "system": platform.platform(),
        "cpus": os.cpu_count(),
        "client": client,
        "pinning": pinning.describe(),
        "connections": args.connections,
        "python_gc": args.python_gc,
        "asyncio_loop": args.asyncio_loop,
        "status_handler": not args.no_status_handler,
        "uvloop": uvloop_version(),
        "rounds": args.rounds,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "scenarios": args.scenarios,
        "servers": args.servers,
        "dispatch_events": args.events,
        "dispatch_conversations": args.conversations,
        "latency_events": args.latency_events,
        "memory_events": args.memory_events,
    }


async def run(args: argparse.Namespace, client: str, out: TextIO) -> dict[str, Any]:
    """Run the chosen parts and return every raw figure."""
    pinning = choose_pinning()
    plan = LoadPlan(
        client=client,
        warmup=args.warmup,
        duration=args.duration,
        connections=args.connections,
        rounds=args.rounds,
        pinning=pinning,
        python_gc=args.python_gc,
        asyncio_loop=args.asyncio_loop,
        status_handler=not args.no_status_handler,
    )
    results: dict[str, Any] = {"meta": describe_machine(args, client, pinning)}
    uvloop = None if args.asyncio_loop else uvloop_version()
    loop = f"uvloop {uvloop}" if uvloop else "asyncio's own loop"
    out.write(
        f"whizrouter benchmarks{' (smoke run: figures mean nothing)' if args.smoke else ''}"
        f"; load by {client}; {pinning.describe()}; whizrouter servers on {loop}"
        + ("; their bots have no status handler" if args.no_status_handler else "")
        + "\n\n"
    )
    if "http" in args.parts:
        results["http"] = await run_http(args, plan, out)
    if "paired" in args.parts:
        results["paired"] = await run_pairs(args, plan, out)
    if "dispatch" in args.parts:
        results["dispatch"] = await run_dispatch(args, pinning, out)
    if "memory" in args.parts:
        results["memory"] = await run_memory(args, pinning, out)
    return results


def print_report(results: dict[str, Any], args: argparse.Namespace, out: TextIO) -> None:
    """The tables, the targets and any failed check."""
    meta = results["meta"]
    if "http" in results:
        out.write(
            f"\nHTTP: median of {meta['rounds']} round(s); {meta['client']}, 1 thread, "
            f"{meta['connections']} connections, {meta['warmup_s']:g} s warm-up + "
            f"{meta['duration_s']:g} s measured per server and round\n"
        )
        out.write(
            "CPU us: server CPU time per acknowledged callback, all of its work included (the "
            "events' handling after the window too); core: the share of its core the server got "
            "in the measured window (far below 100% means other programs took the core)\n"
        )
        out.write("\n".join(http_table(results["http"], args.servers)) + "\n")
    if "paired" in results:
        out.write(
            f"\nPaired: median of {meta['rounds']} pair(s); each server and a baseline loaded "
            "at once on the same core (half the connections each), so both see the same "
            "machine speed; x base = baseline CPU per callback / the server's, the req/s ratio "
            "it predicts\n"
        )
        out.write("\n".join(paired_table(results["paired"], args.servers)) + "\n")
    if "dispatch" in results:
        out.write(
            f"\nDispatch without HTTP: {meta['dispatch_events']:,} events preloaded, "
            "no-op handler, default concurrency 64\n"
        )
        out.write("\n".join(dispatch_table(results["dispatch"])) + "\n")
    if "memory" in results:
        out.write("\nMemory: a started bot whose handlers block, the rest waiting in the inbox\n")
        out.write("\n".join(memory_table(results["memory"])) + "\n")
    out.write(
        "\nTargets (reported, not asserted)"
        + (": a smoke run is too small for them to mean anything" if args.smoke else "")
        + "\n"
    )
    out.write("\n".join(targets_table(evaluate(results))) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print the report, write the JSON; returns the exit code.

    Args:
        argv: the command line (see ``--help``); None means ``sys.argv[1:]``.
    """
    args = parse_args(argv)
    out = sys.stdout
    client = choose_client(args)
    if client is None and ("http" in args.parts or "paired" in args.parts):
        sys.stderr.write(
            f"wrk is not installed; {WRK_HINT}\n"
            "(or run the smoke test, which falls back to a built-in client: "
            "python -m benchmarks --smoke)\n"
        )
        return 2
    results = asyncio.run(run(args, client or "builtin", out))
    targets = evaluate(results)
    results["targets"] = [target.as_dict() for target in targets]
    failures = failed_checks(results)
    results["failed_checks"] = failures
    print_report(results, args, out)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    out.write(f"\nraw figures: {args.output}\n")
    if failures:
        out.write("\nCHECKS FAILED (something did not run as it must):\n")
        out.write("".join(f"  {failure}\n" for failure in failures))
        return 1
    return 0
