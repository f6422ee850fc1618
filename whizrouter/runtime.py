"""Process-wide tuning the standalone bot applies: the garbage collector's schedule.

Every callback allocates a few dozen short-lived objects (request, response, event records,
futures). With Python's default first threshold of 700, the collector runs hundreds of times
a second under load, and each full collection walks the whole heap, including everything
imported at startup: measured on the sqlite inbox, that was about a tenth of the CPU and
pauses of 50-70 ms, which set the p99 latency of the webhook. whizrouter's hot path creates
no reference cycles, so collecting less often costs little memory.

``whizrouter run`` (and ``WhizRouter.run``) call ``tune_gc`` once the app has started. An app
embedded in someone else's process leaves the collector alone unless it calls ``tune_gc``
itself: the process is its owner's.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping

from whizrouter.errors import ConfigurationError

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
