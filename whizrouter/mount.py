"""Adding the webhook and the health check to an aiohttp app of your own (``app.attach``).

The health check goes beside the webhook (``/bots/wa/webhook`` → ``/bots/wa/healthz``) unless
a path is given, and so do the readiness check and the metrics (``/bots/wa/readyz``,
``/bots/wa/metrics``). A path the host app already routes is refused: its route and the bot's
would shadow each other, and callbacks would silently go to the wrong one.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from aiohttp import web, web_urldispatcher

from whizrouter.errors import ConfigurationError
from whizrouter.receiver import Receiver

if TYPE_CHECKING:
    from whizrouter.app import WhizRouter

#: A GET route's handler.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def path_beside(webhook_path: str, name: str) -> str:
    """``name`` in the folder of ``webhook_path`` (``/wa/webhook``: ``/wa/<name>``)."""
    return posixpath.join(posixpath.dirname(webhook_path) or "/", name)


def health_path_beside(webhook_path: str) -> str:
    """``/healthz`` in the folder of ``webhook_path``."""
    return path_beside(webhook_path, "healthz")


def _routed(web_app: web.Application, path: str) -> str | None:
    """The route of ``web_app`` that already answers ``path``, described, or None."""
    for resource in web_app.router.resources():
        if isinstance(resource, web_urldispatcher.PrefixResource):
            prefix = resource.canonical
            taken = path == prefix or path.startswith(prefix.rstrip("/") + "/")
        elif isinstance(resource, web_urldispatcher.Resource):
            taken = resource._match(path) is not None
        else:
            continue
        if taken:
            methods = sorted({route.method for route in resource})
            return f"{resource.canonical} ({', '.join(methods) or 'no method'})"
    return None


def mount(
    web_app: web.Application,
    receiver: Receiver,
    takes_callbacks: bool,
    path: str,
    health_path: str | None,
    beside: Mapping[str, Handler] | None = None,
) -> None:
    """Route ``POST path`` (when ``takes_callbacks``) and ``GET health_path`` (beside the
    webhook when None; not at all when empty) to ``receiver``, and each of ``beside``
    (``{"readyz": handler}``) to ``GET`` at its name beside the webhook.

    Raises:
        ConfigurationError: ``web_app`` already routes one of the paths.
    """
    if health_path is None:
        health_path = health_path_beside(path)
    others = {path_beside(path, name): handler for name, handler in (beside or {}).items()}
    wanted = (
        ([("webhook", path)] if takes_callbacks else [])
        + ([("health check", health_path)] if health_path else [])
        + [(f"{posixpath.basename(other)} route", other) for other in others]
    )
    for what, wanted_path in wanted:
        existing = _routed(web_app, wanted_path)
        if existing is not None:
            raise ConfigurationError(
                f"cannot serve the bot's {what} at {wanted_path}: the aiohttp app already routes "
                f"{existing} there; pass another path to attach() "
                f"({'health_path' if what == 'health check' else 'path'}=...)"
            )
    if takes_callbacks:
        web_app.router.add_post(path, receiver.webhook, expect_handler=receiver.expect_continue)
    if health_path:
        web_app.router.add_get(health_path, receiver.healthz)
    for other, handler in others.items():
        web_app.router.add_get(other, handler)


def attach_bot(
    bot: WhizRouter, web_app: web.Application, path: str, health_path: str | None
) -> None:
    """``bot.attach(web_app)``: its routes (several numbers' paths too), and its start and stop
    tied to ``web_app``'s."""
    takes_callbacks = bot.role != "worker"
    beside: dict[str, Handler] = {"readyz": bot.readiness.handle}
    if not bot.metrics.on_own_port:
        beside["metrics"] = bot.metrics.handle
    mount(web_app, bot.receiver, takes_callbacks, path, health_path, beside)
    if bot.numbers is not None and takes_callbacks:
        bot.numbers.serve(web_app, path, bot.receiver)

    async def lifespan(_: web.Application) -> AsyncIterator[None]:
        await bot.start()
        yield
        await bot.stop()

    web_app.cleanup_ctx.append(lifespan)
