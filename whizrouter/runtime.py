"""Process-wide choices the standalone bot makes: the event loop and the collector's schedule.

**Event loop.** ``whizrouter run`` (and ``WhizRouter.run``) run on uvloop, a libuv-based
implementation of the asyncio loop, when it is installed (it is a dependency wherever it
builds: CPython off Windows). Serving a callback is mostly event-loop and socket work, which
uvloop does in C: measured side by side on one core, a whizrouter bot needed 3 to 14 % less
CPU per single-message callback than on asyncio's own loop (over the last two measurements).
``WHIZROUTER_LOOP=asyncio`` keeps the standard loop; ``uvloop`` insists on it and fails when it
is missing. An app embedded in someone else's process runs on whatever loop its owner started.

**Garbage collector.**
Every callback allocates a few dozen short-lived objects (request, response, event records,
futures). With Python's default first threshold of 700, the collector runs hundreds of times
a second under load, and each full collection walks the whole heap, including everything
imported at startup: measured on the sqlite inbox, that was about a tenth of the CPU and
pauses of 50-70 ms, which set the p99 latency of the webhook. whizrouter's hot path creates
no reference cycles, so collecting less often costs little memory.

``whizrouter run`` (and ``WhizRouter.run``) call ``tune_gc`` once the app has started. An app
embedded in someone else's process leaves the collector alone unless its owner calls
``whizrouter.runtime.tune_gc`` itself: the process is the owner's, which is also why
``tune_gc`` is not in the package's front door.

**Environment.** ``WHIZROUTER_LOOP`` and ``WHIZROUTER_GC_THRESHOLD`` are read here, not in
:mod:`whizrouter.settings`: they tune the process that ``whizrouter run`` starts, and an app
embedded elsewhere never reads them.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Literal, TypeVar

from whizrouter.errors import ConfigurationError

T = TypeVar("T")
LoopChoice = Literal["auto", "uvloop", "asyncio"]
LOOP_CHOICES: tuple[LoopChoice, ...] = ("auto", "uvloop", "asyncio")
LOOP_ENV_VAR = "WHIZROUTER_LOOP"

#: The collector's first threshold under ``tune_gc`` (Python's default is 700).
DEFAULT_GC_THRESHOLD = 50_000
ENV_VAR = "WHIZROUTER_GC_THRESHOLD"


def gc_threshold_from_env(env: Mapping[str, str] | None = None) -> int:
    """``WHIZROUTER_GC_THRESHOLD``, or the default; 0 means leave the collector alone.

    Raises:
        ConfigurationError: the value is not a whole number of at least 0.
    """
    raw = (os.environ if env is None else env).get(ENV_VAR, "")
    if raw == "":
        return DEFAULT_GC_THRESHOLD
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(
            f"{ENV_VAR}={raw!r} is not a whole number; use 0 to keep Python's collector "
            f"settings, or a first threshold such as {DEFAULT_GC_THRESHOLD}"
        ) from None
    if value < 0:
        raise ConfigurationError(f"{ENV_VAR}={raw!r} must be 0 or more")
    return value


def tune_gc(threshold: int | None = None) -> str:
    """Freeze the startup heap and raise the collector's first threshold.

    Call it once, after startup: ``gc.freeze`` moves every object alive now (modules, the
    app, its routers) out of the collector's reach, so later full collections only walk what
    was allocated since.

    Args:
        threshold: the first-generation threshold; None reads ``WHIZROUTER_GC_THRESHOLD``
            (default 50,000); 0 changes nothing.

    Returns:
        a one-line description of what was done, for the startup log.
    """
    if threshold is None:
        threshold = gc_threshold_from_env()
    if threshold == 0:
        return f"garbage collector: Python's defaults ({ENV_VAR}=0)"
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(threshold, second, third)
    return (
        f"garbage collector: startup heap frozen ({gc.get_freeze_count()} objects), first "
        f"threshold {threshold} ({ENV_VAR}=0 keeps Python's defaults)"
    )


def loop_choice_from_env(env: Mapping[str, str] | None = None) -> LoopChoice:
    """``WHIZROUTER_LOOP``: ``auto`` (default; uvloop when installed), ``uvloop`` or ``asyncio``.

    Raises:
        ConfigurationError: the value is none of those.
    """
    raw = (os.environ if env is None else env).get(LOOP_ENV_VAR, "").strip().lower()
    if raw == "":
        return "auto"
    for choice in LOOP_CHOICES:
        if raw == choice:
            return choice
    raise ConfigurationError(
        f"{LOOP_ENV_VAR}={raw!r} is not an event loop whizrouter knows; use one of "
        f"{', '.join(LOOP_CHOICES)} (auto: uvloop when installed)"
    )


def loop_factory(choice: LoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop ``choice`` means here; None for asyncio's own loop.

    Raises:
        ConfigurationError: ``uvloop`` was asked for and is not installed.
    """
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise ConfigurationError(
                f"{LOOP_ENV_VAR}=uvloop, but uvloop is not installed; `pip install uvloop` "
                f"(not available on Windows), or unset {LOOP_ENV_VAR}"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_with_loop(main: Coroutine[Any, Any, T], choice: LoopChoice | None = None) -> T:
    """Run ``main`` to completion on the chosen event loop, as ``asyncio.run`` does.

    Args:
        main: the coroutine to run.
        choice: which loop; None reads ``WHIZROUTER_LOOP``.

    Raises:
        ConfigurationError: the choice is unknown, or names a loop that is not installed.
    """
    try:
        factory = loop_factory(loop_choice_from_env() if choice is None else choice)
    except ConfigurationError:
        main.close()  # closed, so Python does not warn that it was never awaited
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """Which implementation runs the current event loop: ``asyncio``, ``uvloop``, ..."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def uvloop_version() -> str | None:
    """The installed uvloop's version, or None when uvloop cannot be imported."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    return str(getattr(uvloop, "__version__", "?"))


def describe_running_loop() -> str:
    """A one-line description of the running event loop, for the startup log."""
    version = uvloop_version()
    if version is None:
        return (
            "event loop: asyncio's own, as uvloop is not installed (`pip install uvloop` for "
            "less CPU per callback)"
        )
    if running_loop_name() == "uvloop":
        return f"event loop: uvloop {version} ({LOOP_ENV_VAR}=asyncio keeps Python's own)"
    return f"event loop: asyncio's own ({LOOP_ENV_VAR}=asyncio; unset it for uvloop)"
