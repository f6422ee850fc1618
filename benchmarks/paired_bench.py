"""The paired benchmark: a server and the baseline loaded at the same time, on the same core.

The HTTP benchmark measures one server at a time, and this machine's speed drifts between
windows, so its req/s ratios move by about 0.1 from run to run. Here each server shares its
core with the baseline for the same window: whatever slows the machine slows both alike. What
each spent per acknowledged callback (its CPU time, all threads, divided by its 200s) is then
compared; while a server keeps its core busy, its req/s is in inverse proportion to that
figure, so ``baseline CPU / server CPU`` estimates the req/s ratio with far less noise.

Each side gets half the connections, from its own load generator on the load core. The
server's handlers must have run once per event of every callback answered 200, as in the
HTTP benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.http_bench import (
    BASELINE,
    PAIRED_BASELINE,
    LoadPlan,
    Progress,
    ServerProcess,
    check_dispatch,
    check_verdict,
    drive,
    median_or_none,
    scenario_script,
)
from benchmarks.scenarios import Scenario


async def _measure_pair(
    baseline: ServerProcess,
    server: ServerProcess,
    session: aiohttp.ClientSession,
    scenario: Scenario,
    plan: LoadPlan,
    script: Path | None,
    nonce: str,
) -> dict[str, Any]:
    half = replace(plan, connections=max(1, plan.connections // 2))
    windows = []
    if plan.warmup > 0:
        _, warmup = await asyncio.gather(
            drive(baseline, scenario, half, script, nonce + "bw", plan.warmup),
            drive(server, scenario, half, script, nonce + "sw", plan.warmup),
        )
        windows.append(warmup)
        await server.settled_stats(session, wait_seconds=300)
    base_before, server_before = await baseline.stats(session), await server.stats(session)
    base_load, load = await asyncio.gather(
        drive(baseline, scenario, half, script, nonce + "bm", plan.duration),
        drive(server, scenario, half, script, nonce + "sm", plan.duration),
    )
    windows.append(load)
    # Waits until the events of the window were handled: their CPU counts too.
    check = await check_dispatch(
        server, session, scenario, windows, half.connections, wait_seconds=300
    )
    base_after, server_after = await baseline.stats(session), await server.stats(session)
    base_us = _cpu_per_callback(base_before, base_after)
    server_us = _cpu_per_callback(server_before, server_after)
    return {
        "baseline_load": base_load.as_dict(),
        "load": load.as_dict(),
        "baseline_us_per_callback": base_us,
        "us_per_callback": server_us,
        "cpu_ratio": base_us / server_us if base_us and server_us else None,
        "check": asdict(check),
    }


def _cpu_per_callback(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    answered = after["ok"] - before["ok"]
    return (after["cpu_s"] - before["cpu_s"]) / answered * 1e6 if answered else None


async def run_paired(
    scenario: Scenario,
    servers: Sequence[str],
    plan: LoadPlan,
    workdir: Path,
    progress: Progress,
) -> dict[str, Any]:
    """Pair every server but the baselines with its baseline (``asgi`` with
    ``asgi-baseline``, the others with ``baseline``), ``plan.rounds`` times.

    Returns:
        per server: each round's figures and the median of ``cpu_ratio`` (baseline CPU per
        callback over the server's: the req/s ratio it predicts).
    """
    script = scenario_script(scenario, plan, workdir)
    baselines = {BASELINE, *PAIRED_BASELINE.values()}
    rounds: dict[str, list[dict[str, Any]]] = {
        kind: [] for kind in servers if kind not in baselines
    }
    async with aiohttp.ClientSession() as session:
        for number in range(1, plan.rounds + 1):
            for kind in rounds:
                label = f"{scenario.name}-pair{number}-{kind}"
                baseline = ServerProcess(
                    PAIRED_BASELINE.get(kind, BASELINE), workdir, plan.pinning, label + "-baseline"
                )
                server = ServerProcess(
                    kind,
                    workdir,
                    plan.pinning,
                    label,
                    python_gc=plan.python_gc,
                    asyncio_loop=plan.asyncio_loop,
                    status_handler=plan.status_handler,
                )
                try:
                    await asyncio.gather(baseline.start(), server.start())
                    result = await _measure_pair(
                        baseline,
                        server,
                        session,
                        scenario,
                        plan,
                        script,
                        f"{scenario.name}{number}{kind}p",
                    )
                finally:
                    for process in (baseline, server):
                        with contextlib.suppress(Exception):
                            await process.stop()
                if not result["check"]["passed"]:
                    result["check"]["log"] = server.log_tail()
                rounds[kind].append(result)
                ratio = result["cpu_ratio"]
                progress(
                    f"  {scenario.name:<9} pair {number}  {kind:<12} "
                    f"{result['us_per_callback'] or 0:6.0f} us CPU/callback, baseline beside it "
                    f"{result['baseline_us_per_callback'] or 0:6.0f}: "
                    f"{'-' if ratio is None else f'{ratio:.2f}x'}  "
                    + check_verdict(result["check"])
                )
    return {
        kind: {
            "median_cpu_ratio": median_or_none(result["cpu_ratio"] for result in results),
            "median_us_per_callback": median_or_none(
                result["us_per_callback"] for result in results
            ),
            "median_baseline_us_per_callback": median_or_none(
                result["baseline_us_per_callback"] for result in results
            ),
            "dispatch_checked": all(result["check"]["passed"] for result in results),
            "rounds": results,
        }
        for kind, results in rounds.items()
    }
