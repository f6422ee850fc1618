"""The standalone process's event loop and collector tuning (``whizrouter.runtime``)."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys

import pytest

from whizrouter import ConfigurationError
from whizrouter.runtime import (
    DEFAULT_GC_THRESHOLD,
    describe_running_loop,
    gc_threshold_from_env,
    loop_choice_from_env,
    run_with_loop,
    running_loop_name,
)


async def _running_loop_module_and_line() -> tuple[str, str]:
    await asyncio.sleep(0)
    return running_loop_name(), describe_running_loop()


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
        "import gc\n"
        "from whizrouter.runtime import tune_gc\n"
        "line = tune_gc(12345)\n"
        "print(gc.get_threshold()[0], gc.get_freeze_count() > 1000, line)\n"
    )
    threshold, frozen, line = out.split(" ", 2)
    assert threshold == "12345"
    assert frozen == "True"
    assert "first threshold 12345" in line


def test_tune_gc_with_zero_leaves_the_collector_alone() -> None:
    out = _in_fresh_python(
        "import gc\n"
        "from whizrouter.runtime import tune_gc\n"
        "before = gc.get_threshold()\n"
        "line = tune_gc(0)\n"
        "print(gc.get_threshold() == before, gc.get_freeze_count(), line)\n"
    )
    same, frozen, line = out.split(" ", 2)
    assert (same, frozen) == ("True", "0")
    assert "Python's defaults" in line


def test_loop_choice_defaults_to_auto_and_reads_the_environment() -> None:
    assert loop_choice_from_env({}) == "auto"
    assert loop_choice_from_env({"WHIZROUTER_LOOP": ""}) == "auto"
    assert loop_choice_from_env({"WHIZROUTER_LOOP": "asyncio"}) == "asyncio"
    assert loop_choice_from_env({"WHIZROUTER_LOOP": " UVLOOP "}) == "uvloop"


def test_an_unknown_loop_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"WHIZROUTER_LOOP='tokio'.*auto, uvloop, asyncio"):
        loop_choice_from_env({"WHIZROUTER_LOOP": "tokio"})


def test_auto_runs_on_uvloop_where_it_is_installed() -> None:
    # uvloop is a dependency on CPython off Windows, where this suite runs.
    pytest.importorskip("uvloop")
    module, line = run_with_loop(_running_loop_module_and_line(), "auto")
    assert module == "uvloop"
    assert line.startswith("event loop: uvloop ")
    assert "WHIZROUTER_LOOP=asyncio" in line


def test_asyncio_keeps_the_standard_loop() -> None:
    module, line = run_with_loop(_running_loop_module_and_line(), "asyncio")
    assert module == "asyncio"
    assert line.startswith("event loop: asyncio's own")


def test_without_uvloop_auto_falls_back_and_uvloop_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes ``import uvloop`` fail
    module, line = run_with_loop(_running_loop_module_and_line(), "auto")
    assert module == "asyncio"
    assert "uvloop is not installed" in line
    assert "pip install uvloop" in line
    coroutine = _running_loop_module_and_line()
    with pytest.raises(ConfigurationError, match="pip install uvloop"):
        run_with_loop(coroutine, "uvloop")
    # Closed, not left to warn that it was never awaited.
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
