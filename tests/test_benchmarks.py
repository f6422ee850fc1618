"""The benchmark runner's smoke mode runs, and every benchmarked bot really dispatched.

These tests never assert a speed: only that each part ran, and that the handlers ran once for
every event of every callback answered 200.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks.runner import main
from benchmarks.scenarios import CONVERSATIONS, build_scenarios
from whizrouter.payloads import split_callback
from whizrouter.runtime import uvloop_version

HANDLING_SERVERS = ("handwritten", "typed", "durable", "memory", "sqlite")


def _results(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def _smoke(tmp_path: Path, *args: str) -> dict[str, Any]:
    """The results of the runner's smoke mode run with ``args``, once it exited 0."""
    output = tmp_path / "results.json"
    assert main(["--smoke", *args, "--output", str(output)]) == 0
    return _results(output)


def _assert_dispatched(http: dict[str, Any], servers: tuple[str, ...]) -> None:
    assert http, "no HTTP scenario ran"
    for scenario, by_server in http.items():
        assert set(by_server) == {"baseline", *servers}, scenario
        for kind in servers:
            for result in by_server[kind]["rounds"]:
                check = result["check"]
                assert check["ok"] > 0, (scenario, kind, check)
                assert check["handled"] == check["expected"], (scenario, kind, check)
                assert check["passed"], (scenario, kind, check)
        for result in by_server["baseline"]["rounds"]:
            assert result["check"]["ok"] > 0
            assert result["check"]["handled"] is None


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_smoke_run_measures_every_part_and_every_bot_dispatched(tmp_path: Path) -> None:
    results = _smoke(tmp_path)

    assert results["failed_checks"] == []
    _assert_dispatched(results["http"], HANDLING_SERVERS)
    # whizrouter's servers run as `whizrouter run` does, the others on asyncio's own loop.
    whizrouter_loop = "asyncio" if uvloop_version() is None else "uvloop"
    for kind, loop in (
        ("baseline", "asyncio"),
        ("handwritten", "asyncio"),
        ("typed", "asyncio"),
        ("durable", "asyncio"),
        ("memory", whizrouter_loop),
        ("sqlite", whizrouter_loop),
    ):
        assert {r["check"]["loop"] for r in results["http"]["batch"][kind]["rounds"]} == {loop}
    http = results["http"]["batch"]
    for kind in HANDLING_SERVERS:
        for result in http[kind]["rounds"]:
            # Ten messages per callback: ten handler runs per 200.
            assert result["check"]["handled"] == 10 * result["check"]["ok"]
    paired = results["paired"]["batch"]
    assert sorted(paired) == sorted(HANDLING_SERVERS)
    for kind in HANDLING_SERVERS:
        assert paired[kind]["dispatch_checked"]
        for result in paired[kind]["rounds"]:
            assert result["check"]["handled"] == 10 * result["check"]["ok"] > 0
            assert result["us_per_callback"] > 0 and result["baseline_us_per_callback"] > 0
            assert result["cpu_ratio"] == pytest.approx(
                result["baseline_us_per_callback"] / result["us_per_callback"]
            )
    for backend in ("memory", "sqlite"):
        figures = results["dispatch"][backend]
        assert [rate["conversations"] for rate in figures["throughput"]] == [10, 100, 1000]
        for rate in figures["throughput"]:
            assert rate["handled"] == rate["dispatcher_handled"] == rate["events"] == 2000
        assert figures["latency"]["handled"] == figures["latency"]["events"] == 100
    memory = results["memory"]["sqlite"]
    assert memory["stored"] == memory["events"] == 2000
    assert memory["rss_mib"] > 0
    assert results["targets"], "the targets were not evaluated"
    # Each ratio target is read beside the server that only types the events.
    ratio_targets = [t for t in results["targets"] if "req/s" in t["name"]]
    assert ratio_targets
    assert all(t["beside"].startswith("typed events alone: ") for t in ratio_targets)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_smoke_run_without_wrk_uses_the_builtin_client(tmp_path: Path) -> None:
    results = _smoke(
        tmp_path,
        *("--client", "builtin", "--parts", "http", "--scenarios", "statuses"),
        *("--servers", "baseline", "sqlite", "--asyncio-loop"),
    )

    assert results["meta"]["client"] == "builtin"
    assert results["meta"]["asyncio_loop"] is True
    assert {r["check"]["loop"] for r in results["http"]["statuses"]["sqlite"]["rounds"]} == {
        "asyncio"
    }
    _assert_dispatched(results["http"], ("sqlite",))
    for result in results["http"]["statuses"]["sqlite"]["rounds"]:
        assert result["check"]["handled"] == 3 * result["check"]["ok"]


def test_full_run_without_wrk_names_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("benchmarks.runner.wrk_available", lambda: False)

    assert main(["--parts", "http"]) == 2

    assert "install wrk: apt-get install wrk" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(build_scenarios()))
def test_every_request_carries_fresh_ids_over_a_thousand_conversations(name: str) -> None:
    scenario = build_scenarios()[name]
    events = [
        event
        for number in range(1, 2001)
        for event in split_callback(orjson.loads(scenario.render("test", number)))
    ]

    assert len(events) == 2000 * scenario.events_per_request
    assert {event.kind for event in events} <= {"message", "status"}
    assert len({event.key for event in events}) == len(events)
    assert len({event.conversation for event in events}) == CONVERSATIONS


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bots_without_a_status_handler_are_held_to_their_messages_only(tmp_path: Path) -> None:
    results = _smoke(
        tmp_path,
        *("--parts", "http", "paired", "--scenarios", "statuses", "onprem"),
        *("--servers", "baseline", "typed", "memory", "sqlite", "--no-status-handler"),
    )

    assert results["meta"]["status_handler"] is False
    for part in ("http", "paired"):
        for kind in ("memory", "sqlite"):
            for result in results[part]["statuses"][kind]["rounds"]:
                check = result["check"]
                assert check["ok"] > 0 and check["handled"] == check["expected"] == 0, check
            for result in results[part]["onprem"][kind]["rounds"]:
                check = result["check"]
                assert check["handled"] == check["expected"] == check["ok"] > 0, check
        # Only whizrouter's bots lose their status handler: the typed bot still types them.
        for result in results[part]["statuses"]["typed"]["rounds"]:
            assert result["check"]["handled"] == 3 * result["check"]["ok"] > 0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_tuned_sqlite_variant_runs_only_when_named(tmp_path: Path) -> None:
    results = _smoke(
        tmp_path,
        *("--parts", "http", "--scenarios", "onprem"),
        *("--servers", "baseline", "sqlite", "sqlite-aged"),
    )

    _assert_dispatched(results["http"], ("sqlite", "sqlite-aged"))
    assert (
        "sqlite-aged"
        not in _smoke(tmp_path, "--parts", "http", "--scenarios", "onprem")["http"]["onprem"]
    )


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_asgi_servers_pair_with_the_bare_asgi_app_and_handle_every_event(
    tmp_path: Path,
) -> None:
    results = _smoke(
        tmp_path,
        *("--parts", "paired", "--scenarios", "onprem"),
        *("--servers", "asgi-baseline", "asgi-typed", "asgi"),
    )

    assert results["failed_checks"] == []
    paired = results["paired"]["onprem"]
    assert set(paired) == {"asgi-typed", "asgi"}  # each beside asgi-baseline, not alone
    for kind in ("asgi-typed", "asgi"):
        for result in paired[kind]["rounds"]:
            check = result["check"]
            assert check["handled"] == check["expected"] == check["ok"] > 0, (kind, check)
            assert result["baseline_load"]["requests"] > 0
        assert paired[kind]["median_cpu_ratio"] > 0
    # Only whizrouter's own ASGI app has a dispatcher; the typed floor hands out tasks.
    assert paired["asgi"]["rounds"][0]["check"]["dispatcher_handled"] > 0
    assert paired["asgi-typed"]["rounds"][0]["check"]["dispatcher_handled"] is None


def test_the_state_benchmark_measures_state_beside_plain_and_the_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks.state_bench import main as state_main

    assert state_main(["--backend", "memory", "--events", "300", "--rounds", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    result = orjson.loads(line.split(" ", 1)[1])
    assert set(result["best_events_per_s"]) == {"plain", "state", "floor"}
    assert all(rate > 0 for rate in result["best_events_per_cpu_s"].values())
    assert result["ratio"] > 0 and result["floor_cpu_ratio"] > 0
