"""A real uvicorn server on a loopback port, in the test's own event loop, that aiohttp's
``TestClient`` can talk to like one of its own test servers."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from aiohttp.test_utils import BaseTestServer, TestClient
from aiohttp.web_runner import BaseRunner
from yarl import URL

from whizrouter.asgi import ASGIApp
from whizrouter.testing import free_port


class UvicornTestServer(BaseTestServer):
    """Serve an ASGI app with uvicorn (lifespan on) until ``close``."""

    def __init__(self, app: ASGIApp, **config: Any) -> None:
        super().__init__(scheme="http", port=free_port())
        self.port: int
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=self.host,
                port=self.port,
                lifespan="on",
                log_level="warning",
                **config,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        raise NotImplementedError("uvicorn serves this one")

    def make_url(self, path: Any) -> URL:
        return URL(f"http://{self.host}:{self.port}").join(URL(path))

    async def start_server(self, loop: Any = None, **kwargs: Any) -> None:
        self._task = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(10):
            while not self.server.started:
                if self._task.done():
                    self._task.result()
                    raise AssertionError("uvicorn ended before it started")
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self._task is not None:
            self.server.should_exit = True
            await self._task
            self._task = None


async def uvicorn_client(app: ASGIApp, **config: Any) -> TestClient[Any, Any]:
    """A started ``TestClient`` of ``app`` served by uvicorn."""
    client: TestClient[Any, Any] = TestClient(UvicornTestServer(app, **config))
    await client.start_server()
    return client
