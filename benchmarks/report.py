"""Turn the raw figures into the printed tables and the target verdicts.

Targets are reported, never asserted: a missed target is a finding, not a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

#: The memory inbox should serve at least this share of the baseline's requests/s.
MEMORY_RPS_RATIO = 0.9
#: The sqlite inbox should serve at least this share of the baseline's requests/s ...
SQLITE_RPS_RATIO = 0.75
#: ... with a p99 latency at most this multiple of the baseline's.
SQLITE_P99_RATIO = 2.5
#: Paired (the headline): the memory inbox's share of the baseline's requests/s ...
PAIRED_MEMORY_RATIO = 0.95
#: ... and the sqlite inbox's, which should also reach the hand-made durable writer's.
PAIRED_SQLITE_RATIO = 0.85
#: Events per second from the inbox to a no-op handler.
DISPATCH_RATE = {"memory": 20_000.0, "sqlite": 8_000.0}
#: Cost per event with the most conversations, as a multiple of that with the fewest.
CONVERSATION_COST_RATIO = 1.5
#: Resident size with 100,000 events waiting in the sqlite inbox, MiB.
RSS_LIMIT_MIB = 150.0


@dataclass(frozen=True, slots=True)
class Target:
    """One target and whether this run met it.

    Attributes:
        name: what is compared, with the threshold.
        value: the measured figure (None when it could not be measured).
        met: whether the figure is within the target.
        beside: what to read the figure against, printed after it ("" for nothing).
    """

    name: str
    value: float | None
    met: bool
    beside: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The target for the JSON results."""
        return asdict(self)


def evaluate(results: dict[str, Any]) -> list[Target]:
    """Every target that the parts of the run in ``results`` can speak to."""
    targets: list[Target] = []
    for scenario, servers in results.get("http", {}).items():
        memory, sqlite = servers.get("memory"), servers.get("sqlite")
        typed = _typed_note(servers.get("typed"), "rps_ratio")
        if memory is not None and memory["rps_ratio"] is not None:
            ratio = memory["rps_ratio"]
            targets.append(
                Target(
                    f"{scenario}: memory req/s >= {MEMORY_RPS_RATIO}x baseline",
                    ratio,
                    ratio >= MEMORY_RPS_RATIO,
                    typed,
                )
            )
        if sqlite is not None and sqlite["rps_ratio"] is not None:
            ratio = sqlite["rps_ratio"]
            targets.append(
                Target(
                    f"{scenario}: sqlite req/s >= {SQLITE_RPS_RATIO}x baseline",
                    ratio,
                    ratio >= SQLITE_RPS_RATIO,
                    typed,
                )
            )
            p99 = sqlite["p99_ratio"]
            targets.append(
                Target(
                    f"{scenario}: sqlite p99 <= {SQLITE_P99_RATIO}x baseline p99",
                    p99,
                    p99 is not None and p99 <= SQLITE_P99_RATIO,
                )
            )
    for scenario, servers in results.get("paired", {}).items():
        typed = _typed_note(servers.get("typed"), "median_cpu_ratio")
        durable = servers.get("durable", {}).get("median_cpu_ratio")
        for kind, floor in (("memory", PAIRED_MEMORY_RATIO), ("sqlite", PAIRED_SQLITE_RATIO)):
            figures = servers.get(kind)
            if figures is not None and figures["median_cpu_ratio"] is not None:
                ratio = figures["median_cpu_ratio"]
                beside = typed
                if kind == "sqlite" and durable is not None:
                    mine = f"hand-made durable writer: {durable:.2f}"
                    beside = f"{beside}; {mine}" if beside else mine
                targets.append(
                    Target(
                        f"{scenario}: {kind} req/s >= {floor}x baseline "
                        "(paired, from CPU/callback)",
                        ratio,
                        ratio >= floor,
                        beside,
                    )
                )
    for backend, figures in results.get("dispatch", {}).items():
        floor = DISPATCH_RATE[backend]
        rates = figures["throughput"]
        for rate in rates:
            targets.append(
                Target(
                    f"dispatch {backend}, {rate['conversations']:,} conversations: "
                    f">= {floor:,.0f} events/s",
                    rate["events_per_s"],
                    rate["events_per_s"] >= floor,
                )
            )
        if len(rates) >= 2:
            fewest = min(rates, key=lambda rate: rate["conversations"])
            most = max(rates, key=lambda rate: rate["conversations"])
            ratio = most["us_per_event"] / fewest["us_per_event"]
            targets.append(
                Target(
                    f"dispatch {backend}: cost per event at {most['conversations']:,} "
                    f"conversations <= {CONVERSATION_COST_RATIO}x that at "
                    f"{fewest['conversations']:,}",
                    ratio,
                    ratio <= CONVERSATION_COST_RATIO,
                )
            )
    sqlite_memory = results.get("memory", {}).get("sqlite")
    if sqlite_memory is not None:
        rss = sqlite_memory["rss_mib"]
        targets.append(
            Target(
                f"RSS with {sqlite_memory['events']:,} events waiting in sqlite <= "
                f"{RSS_LIMIT_MIB:.0f} MiB",
                rss,
                rss <= RSS_LIMIT_MIB,
            )
        )
    return targets


def _typed_note(figures: dict[str, Any] | None, ratio: str) -> str:
    """What the ``typed`` server reached, beside a target: a callback of many events can come
    no nearer the baseline than building their typed events alone lets it."""
    if figures is None or figures[ratio] is None:
        return ""
    return f"typed events alone: {figures[ratio]:.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _rows(
    results: dict[str, Any], servers: Iterable[str]
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(scenario label, server, figures)`` in table order; the label only on its first row."""
    order = list(servers)
    for scenario, by_server in results.items():
        label = scenario
        for kind in order:
            figures = by_server.get(kind)
            if figures is not None:
                yield label, kind, figures
                label = ""


def http_table(results: dict[str, Any], servers: Iterable[str]) -> list[str]:
    """The HTTP table: medians over the rounds and ratios to the baseline."""
    lines = [
        f"{'scenario':<9} {'server':<12} {'req/s':>9} {'x base':>7} {'p50 ms':>8} {'x base':>7} "
        f"{'p99 ms':>8} {'x base':>7} {'CPU us':>7} {'x base':>7} {'core':>5} {'non-2xx':>8}  "
        "dispatched (handled / 200s x events)",
    ]
    for label, kind, figures in _rows(results, servers):
        checks = [result["check"] for result in figures["rounds"]]
        if checks and checks[0]["handled"] is None:
            dispatched = "n/a (no handler)"
        else:
            handled = sum(check["handled"] or 0 for check in checks)
            expected = sum(check["expected"] or 0 for check in checks)
            verdict = "ok" if figures["dispatch_checked"] else "FAILED"
            dispatched = f"{verdict} {handled:,} / {expected:,}"
        lines.append(
            f"{label:<9} {kind:<12} {figures['median_rps']:>9,.0f} "
            f"{_ratio(figures['rps_ratio']):>7} {figures['median_p50_ms']:>8.2f} "
            f"{_ratio(figures['p50_ratio']):>7} {figures['median_p99_ms']:>8.2f} "
            f"{_ratio(figures['p99_ratio']):>7} {_number(figures['median_cpu_us']):>7} "
            f"{_ratio(figures['cpu_ratio']):>7} {_share(figures['median_core_share']):>5} "
            f"{figures['non_2xx']:>8,}  {dispatched}"
        )
    return lines


def paired_table(results: dict[str, Any], servers: Iterable[str]) -> list[str]:
    """The paired table: CPU per callback beside a baseline, and the ratio it predicts."""
    lines = [
        f"{'scenario':<9} {'server':<12} {'CPU us':>7} {'base us':>8} {'x base':>7}  dispatched"
    ]
    for label, kind, figures in _rows(results, servers):
        lines.append(
            f"{label:<9} {kind:<12} {_number(figures['median_us_per_callback']):>7} "
            f"{_number(figures['median_baseline_us_per_callback']):>8} "
            f"{_ratio(figures['median_cpu_ratio']):>7}  "
            f"{'ok' if figures['dispatch_checked'] else 'FAILED'}"
        )
    return lines


def dispatch_table(results: dict[str, Any]) -> list[str]:
    """The dispatch table: events/s per backend and conversation count, then the latency."""
    lines = [
        f"{'backend':<8} {'conversations':>13} {'events':>9} {'events/s':>10} "
        f"{'us/event':>9}  handled"
    ]
    for backend, figures in results.items():
        for rate in figures["throughput"]:
            lines.append(
                f"{backend:<8} {rate['conversations']:>13,} {rate['events']:>9,} "
                f"{rate['events_per_s']:>10,.0f} {rate['us_per_event']:>9.1f}  "
                f"{rate['dispatcher_handled']:,}"
            )
    lines.append("")
    lines.append("append returned (the 200) -> handler started, one callback about every ms:")
    for backend, figures in results.items():
        delay = figures["latency"]
        lines.append(
            f"{backend:<8} p50 {delay['p50_ms']:.3f} ms  p99 {delay['p99_ms']:.3f} ms  "
            f"max {delay['max_ms']:.3f} ms  ({delay['handled']:,} events)"
        )
    return lines


def memory_table(results: dict[str, Any]) -> list[str]:
    """The memory table: resident size with the backlog waiting, per backend."""
    lines = [
        f"{'backend':<8} {'waiting':>9} {'in memory':>10} {'RSS MiB':>8} {'idle MiB':>9} "
        f"{'peak MiB':>9} {'file MiB':>9}"
    ]
    for backend, figures in results.items():
        lines.append(
            f"{backend:<8} {figures['backlog']:>9,} {figures['claimed_in_memory']:>10,} "
            f"{figures['rss_mib']:>8.1f} {figures['idle_rss_mib']:>9.1f} "
            f"{figures['peak_rss_mib']:>9.1f} {figures['files_mib']:>9.1f}"
        )
    return lines


def targets_table(targets: Iterable[Target]) -> list[str]:
    """One line per target: met or missed, and the measured figure."""
    lines = []
    for target in targets:
        value = "-" if target.value is None else f"{target.value:,.2f}"
        beside = f" ({target.beside})" if target.beside else ""
        lines.append(f"  [{'met' if target.met else 'MISSED':>6}] {target.name}: {value}{beside}")
    return lines
