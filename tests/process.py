"""Run ``whizrouter run`` as a real child process for tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import aiohttp

from whizrouter.testing import free_port

ROOT = Path(__file__).resolve().parent.parent


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

    async def launch(self) -> None:
        """Start the process without waiting for it."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "whizrouter",
            "run",
            self.target,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
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
