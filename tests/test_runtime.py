"""The garbage-collector tuning of the standalone process (``whizrouter.runtime``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from whizrouter import ConfigurationError
from whizrouter.runtime import DEFAULT_GC_THRESHOLD, gc_threshold_from_env


def test_threshold_defaults_and_reads_the_environment() -> None:
    assert gc_threshold_from_env({}) == DEFAULT_GC_THRESHOLD
    assert gc_threshold_from_env({"WHIZROUTER_GC_THRESHOLD": ""}) == DEFAULT_GC_THRESHOLD
    assert gc_threshold_from_env({"WHIZROUTER_GC_THRESHOLD": "0"}) == 0
    assert gc_threshold_from_env({"WHIZROUTER_GC_THRESHOLD": "20000"}) == 20_000


@pytest.mark.parametrize("raw", ["lots", "-1", "1.5"])
def test_a_bad_threshold_names_the_variable_and_what_to_use(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="WHIZROUTER_GC_THRESHOLD"):
        gc_threshold_from_env({"WHIZROUTER_GC_THRESHOLD": raw})


def _in_fresh_python(code: str) -> str:
    # tune_gc changes the whole process: never run it inside the test runner.
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_tune_gc_freezes_the_startup_heap_and_raises_the_first_threshold() -> None:
    out = _in_fresh_python(
        "import gc, whizrouter\n"
        "line = whizrouter.tune_gc(12345)\n"
        "print(gc.get_threshold()[0], gc.get_freeze_count() > 1000, line)\n"
    )
    threshold, frozen, line = out.split(" ", 2)
    assert threshold == "12345"
    assert frozen == "True"
    assert "first threshold 12345" in line


def test_tune_gc_with_zero_leaves_the_collector_alone() -> None:
    out = _in_fresh_python(
        "import gc, whizrouter\n"
        "before = gc.get_threshold()\n"
        "line = whizrouter.tune_gc(0)\n"
        "print(gc.get_threshold() == before, gc.get_freeze_count(), line)\n"
    )
    same, frozen, line = out.split(" ", 2)
    assert (same, frozen) == ("True", "0")
    assert "Python's defaults" in line
