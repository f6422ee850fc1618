"""The NATS scale-out benchmark's smoke mode runs, and every configuration handled every event.

Never a speed: only that each configuration ran and its handlers ran exactly once per event
answered 200.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from benchmarks.nats_scaleout import main


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_smoke_run_measures_sqlite_and_each_worker_count(tmp_path: Path) -> None:
    output = tmp_path / "nats.json"
    printed = io.StringIO()

    assert main(["--smoke", "--output", str(output)], out=printed) == 0

    figures = json.loads(output.read_text())
    plan, results = figures["plan"], figures["results"]
    rows = [(r["backend"], r["receivers"], r["workers"]) for r in results]
    assert rows == [("sqlite", 0, 1), ("nats", 1, 1), ("nats", 1, 2), ("nats", 1, 3)]
    for result in results:
        assert result["passed"], result
        assert result["handled"] == result["expected"] == plan["warmup"] + plan["events"]
        assert result["rate"] > 0 and result["post_rate"] > 0
    table = printed.getvalue()
    assert "handled/s" in table
    assert table.count("  ok") == len(results)
