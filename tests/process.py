"""Run ``whizrouter run`` as a real child process for tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import aiohttp

from whizrouter.testing import FakeProvider, free_port

ROOT = Path(__file__).resolve().parent.parent


def sqlite_bot_env(fake: FakeProvider, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a bot that replies through ``fake`` and stores its events in a
    sqlite inbox under ``tmp_path``; ``extra`` adds or overrides variables."""
    return {
        "WHIZARD_API_KEY": fake.api_key,
        "WHIZARD_BASE_URL": fake.base_url,
        "WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}",
        **extra,
    }


class BotProcess:
    """A ``python -m whizrouter run TARGET`` child process on a free port."""

    def __init__(
        self,
        target: str,
        env: Mapping[str, str],
        *,
        cwd: Path = ROOT,
        args: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.target = target
        self.port = port or free_port()
        self.env = {**os.environ, **env}
        self.cwd = cwd
        self.args = args
        self.process: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20.0) -> None:
        """Start the process and wait until its health check answers."""
        await self.launch()
        await self.wait_healthy(timeout)

    def command(self) -> list[str]:
        """The arguments after ``python -m``: what serves ``target`` on ``port``."""
        return ["whizrouter", "run", self.target, "--host", "127.0.0.1", "--port", str(self.port)]

    async def launch(self) -> None:
        """Start the process without waiting for it."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *self.command(),
            *self.args,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def wait_healthy(self, timeout: float = 20.0) -> None:
        """Wait until the health check answers 200; fail with the output if it exits."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process.returncode is not None:
                    output = await self.output()
                    raise AssertionError(f"bot exited early ({self.process.returncode}):\n{output}")
                try:
                    async with session.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if loop.time() > deadline:
                    raise AssertionError("bot did not become healthy:\n" + await self.stop())
                await asyncio.sleep(0.05)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send a signal to the process."""
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit; return its exit code."""
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def output(self) -> str:
        """Everything the process printed (call after it exited)."""
        assert self.process is not None and self.process.stdout is not None
        return (await self.process.stdout.read()).decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process if it still runs (cleanup after a failed test)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def stop(self) -> str:
        """Terminate (if still running) and return the output."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await self.wait(30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return await self.output()


class CommandProcess:
    """A ``python -m whizrouter ARGS`` child process whose output is read as it comes."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the process and the task that collects its output lines."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "whizrouter",
            *self.args,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a stop signals its children too
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            async with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        """Everything printed so far."""
        return "\n".join(self.lines)

    async def wait_for_line(self, text: str, timeout: float = 20.0, *, after: int = 0) -> int:
        """Wait until a line from index ``after`` on contains ``text``; return its index.

        Raises:
            AssertionError: no such line in time, or the process ended; with the output.
        """

        def found() -> int | None:
            for index in range(after, len(self.lines)):
                if text in self.lines[index]:
                    return index
            return None

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(
                    lambda: (
                        found() is not None or (self._reader is not None and self._reader.done())
                    )
                )
        except TimeoutError:
            pass
        index = found()
        if index is None:
            raise AssertionError(f"no line with {text!r} within {timeout:g} s:\n{self.output}")
        return index

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the process (if it still runs), wait for it, return its exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
        if self._reader is not None:
            await self._reader
        assert self.process.returncode is not None
        return self.process.returncode
