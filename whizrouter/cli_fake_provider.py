"""``whizrouter fake-provider``: the test kit's fake provider as a process of its own.

For a bot in another process, a container or another language's tests: it serves the API of
one shape on a fixed port, prints every call, and takes its failure injection over HTTP, on
routes under ``/_fake/`` that are not part of the API and need no key:

* ``POST /_fake/fail`` ``{"status": 503, "times": 1, "path": "/v1/messages", "body": ...,
  "headers": {"Retry-After": "1"}}``: answer the next matching requests with that error;
* ``POST /_fake/delay`` ``{"seconds": 3, "times": 1, "path": ...}``: hold their answers back;
* ``POST /_fake/drop`` ``{"times": 1, "path": ...}``: close their connections unanswered;
* ``GET /_fake/calls`` (``?kind=send``): the calls received, as JSON;
* ``POST /_fake/reset``: forget the calls and the pending injections.

Every field but ``status`` and ``seconds`` is optional; the rest mean what the arguments of
``FakeProvider.fail_next``, ``delay_next`` and ``drop_next`` mean.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from whizrouter.defaults import API_SHAPES, DEFAULT_FAKE_PROVIDER_PORT, ApiShape
from whizrouter.errors import WhizrouterError
from whizrouter.settings import ClientSettings

if TYPE_CHECKING:  # the test kit is loaded only when the command runs
    from whizrouter.testing.fake_provider import FakeProvider
    from whizrouter.testing.recorded_call import RecordedCall

#: The key the fake accepts when neither ``--key`` nor ``WHIZARD_API_KEY`` names one.
DEFAULT_FAKE_KEY = "test-key"
CONTROL_PREFIX = "/_fake"


def _call_json(call: RecordedCall) -> dict[str, Any]:
    return {
        "method": call.method,
        "path": call.path,
        "status": call.status,
        "kind": call.kind,
        "message_id": call.message_id,
        "json": call.json,
    }


def control_routes(fake: Callable[[], FakeProvider]) -> list[web.RouteDef]:
    """The ``/_fake/`` routes that steer the fake provider ``fake()`` returns."""

    async def options(request: web.Request) -> dict[str, Any]:
        try:
            data = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            raise web.HTTPBadRequest(text=f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="the body must be a JSON object")
        return data

    def number(data: dict[str, Any], name: str, default: int | None = None) -> float:
        value = data.get(name, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise web.HTTPBadRequest(text=f"{name!r} must be a number, not {value!r}")
        return value

    def whole(data: dict[str, Any], name: str, default: int | None = None) -> int:
        value = number(data, name, default)
        if value != int(value):
            raise web.HTTPBadRequest(text=f"{name!r} must be a whole number, not {value!r}")
        return int(value)

    def path_of(data: dict[str, Any]) -> str | None:
        path = data.get("path")
        if path is not None and not isinstance(path, str):
            raise web.HTTPBadRequest(
                text=f"'path' must be a string such as /v1/messages, not {path!r}"
            )
        return path

    async def fail(request: web.Request) -> web.Response:
        data = await options(request)
        headers = data.get("headers") or {}
        if not isinstance(headers, dict):
            raise web.HTTPBadRequest(text="'headers' must be an object of strings")
        fake().fail_next(
            whole(data, "status"),
            data.get("body"),
            times=whole(data, "times", 1),
            path=path_of(data),
            headers={str(k): str(v) for k, v in headers.items()},
        )
        return web.json_response({"ok": True})

    async def delay(request: web.Request) -> web.Response:
        data = await options(request)
        seconds = number(data, "seconds")
        fake().delay_next(seconds, times=whole(data, "times", 1), path=path_of(data))
        return web.json_response({"ok": True})

    async def drop(request: web.Request) -> web.Response:
        data = await options(request)
        fake().drop_next(times=whole(data, "times", 1), path=path_of(data))
        return web.json_response({"ok": True})

    async def calls(request: web.Request) -> web.Response:
        kind = request.query.get("kind")
        selected = [c for c in fake().calls if kind is None or c.kind == kind]
        return web.Response(
            body=orjson.dumps([_call_json(c) for c in selected]), content_type="application/json"
        )

    async def reset(request: web.Request) -> web.Response:
        fake().reset()
        return web.json_response({"ok": True})

    return [
        web.post(CONTROL_PREFIX + "/fail", fail),
        web.post(CONTROL_PREFIX + "/delay", delay),
        web.post(CONTROL_PREFIX + "/drop", drop),
        web.get(CONTROL_PREFIX + "/calls", calls),
        web.post(CONTROL_PREFIX + "/reset", reset),
    ]


async def serve_fake_provider(
    shape: ApiShape, key: str, host: str, port: int, key_source: str
) -> None:
    """Serve a printing fake provider on ``host:port`` until SIGTERM or SIGINT."""
    # Imported here: the fake provider is the test kit's, which `whizrouter run` never loads.
    from whizrouter.console_provider import console_provider

    holder: list[FakeProvider] = []
    fake = console_provider(
        shape,
        api_key=key,
        host=host,
        port=port,
        prefix="call",
        routes=control_routes(lambda: holder[0]),
    )
    holder.append(fake)
    try:
        await fake.start()
    except OSError as exc:
        raise WhizrouterError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port"
        ) from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(
        f"fake provider ({shape} shape) on {fake.base_url}, key {key_source}; failure "
        f"injection at {fake.base_url}{CONTROL_PREFIX}/fail, /delay, /drop; calls at "
        f"{CONTROL_PREFIX}/calls. Ctrl-C stops.\n"
    )
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await fake.close()


def _run(args: argparse.Namespace) -> int:
    settings = ClientSettings.resolve(shape=args.shape)
    if args.key is not None:
        key, source = args.key, "from --key"
    elif settings.api_key is not None:
        key, source = settings.api_key.get_secret_value(), "from WHIZARD_API_KEY"
    else:
        key, source = DEFAULT_FAKE_KEY, f"{DEFAULT_FAKE_KEY!r} (set --key or WHIZARD_API_KEY)"
    asyncio.run(serve_fake_provider(settings.shape, key, args.host, args.port, source))
    return 0


def add_command(
    commands: Any, parents: list[argparse.ArgumentParser], port: Callable[[str], int]
) -> None:
    """Register ``whizrouter fake-provider`` on the ``whizrouter`` subcommands."""
    command = commands.add_parser(
        "fake-provider",
        parents=parents,
        help="run the test kit's fake provider API as its own process",
        description="Serve a fake Whizard API (the test kit's FakeProvider) that answers like "
        "the real one, prints every call, and takes failure injection over HTTP: POST "
        '/_fake/fail {"status": 503, "times": 1, "path": "/v1/messages"}, POST /_fake/delay '
        '{"seconds": 3}, POST /_fake/drop {}, GET /_fake/calls, POST /_fake/reset. Point a '
        "bot at it with WHIZARD_BASE_URL=http://HOST:PORT and the same WHIZARD_API_KEY.",
    )
    command.add_argument(
        "--port",
        type=port,
        default=DEFAULT_FAKE_PROVIDER_PORT,
        help=f"port to listen on ({DEFAULT_FAKE_PROVIDER_PORT})",
    )
    command.add_argument(
        "--host", default="127.0.0.1", help="address (127.0.0.1; 0.0.0.0 in a container)"
    )
    command.add_argument(
        "--shape",
        choices=API_SHAPES,
        default=None,
        help="API shape to speak (default: WHIZARD_API_SHAPE, else onprem)",
    )
    command.add_argument(
        "--key",
        default=None,
        help=f"the key to accept (default: WHIZARD_API_KEY, else {DEFAULT_FAKE_KEY!r})",
    )
    command.set_defaults(func=_run)
