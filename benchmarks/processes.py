"""Child processes of the runner: which core each gets, their environment, their output.

The server (or the dispatch and memory benchmark) runs on one core and the load generator on
another, when the machine has two usable cores and ``taskset`` is installed; otherwise nothing
is pinned and the results say so.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
#: Every line a benchmark child prints for the runner starts with this.
RESULT_PREFIX = "WHIZBENCH "


@dataclass(frozen=True, slots=True)
class Pinning:
    """Where the runner's children run.

    Attributes:
        server_core: the core of the measured process, or None when not pinned.
        client_core: the core of the load generator, or None when not pinned.
    """

    server_core: int | None
    client_core: int | None

    @property
    def pinned(self) -> bool:
        """Whether the children are pinned at all."""
        return self.server_core is not None

    def server(self, command: Sequence[str]) -> list[str]:
        """``command`` run on the server's core."""
        return _taskset(self.server_core, command)

    def client(self, command: Sequence[str]) -> list[str]:
        """``command`` run on the load generator's core."""
        return _taskset(self.client_core, command)

    def describe(self) -> str:
        """A short description for the results."""
        if not self.pinned:
            return "not pinned (needs taskset and two cores)"
        return f"server on core {self.server_core}, load generator on core {self.client_core}"


def _taskset(core: int | None, command: Sequence[str]) -> list[str]:
    if core is None:
        return list(command)
    return ["taskset", "-c", str(core), *command]


def choose_pinning() -> Pinning:
    """Pin the server to the first usable core and the client to the second, if possible."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < 2 or shutil.which("taskset") is None:
        return Pinning(None, None)
    return Pinning(cores[0], cores[1])


def child_env() -> dict[str, str]:
    """The environment of a child: the runner's, minus whizrouter settings, plus this repo.

    Settings such as ``WHIZROUTER_CONCURRENCY`` left in the shell would silently change what
    is measured, so every ``WHIZROUTER_*`` and ``WHIZARD_*`` variable is dropped.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("WHIZROUTER_", "WHIZARD_"))
    }
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    return env


def python_module(module: str, *args: str) -> list[str]:
    """The command that runs ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def parse_result(output: str) -> dict[str, Any]:
    """The last ``WHIZBENCH {...}`` line of a child's output, parsed.

    Raises:
        RuntimeError: the output holds no such line.
    """
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = orjson.loads(line[len(RESULT_PREFIX) :])
            return result
    raise RuntimeError("no result line in the output:\n" + output[-4000:])


async def run_child(command: Sequence[str], *, wait_seconds: float) -> dict[str, Any]:
    """Run a benchmark child to completion and return its result line.

    Raises:
        RuntimeError: the child failed, timed out or printed no result.
    """
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=child_env(),
        cwd=ROOT,
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), wait_seconds)
    except TimeoutError:
        process.kill()
        await process.communicate()
        raise RuntimeError(f"{' '.join(command)} took longer than {wait_seconds:g} s") from None
    output = stdout.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {process.returncode}:\n{output[-4000:]}"
        )
    return parse_result(output)
