"""Plugins: optional async hooks around the app and around every handler run.

A plugin is any object with some of these coroutine methods (all optional)::

    async def startup(self, app: WhizRouter) -> None
    async def shutdown(self, app: WhizRouter) -> None
    async def before_handle(self, event: Any, ctx: Context) -> None
    async def after_handle(self, event: Any, ctx: Context) -> None
    async def on_error(self, event: Any, ctx: Context, exc: BaseException) -> None
    async def flush(self, app: WhizRouter) -> None

``flush`` finishes at once whatever the plugin deferred (a batch, a timer); the test kit
calls it after every callback settled, so a test sees the plugin's provider calls. A
plugin with deferred work also finishes it in ``shutdown``.

A hook that raises, or runs longer than ``HOOK_TIMEOUT`` (30 s, then it is cancelled), is
logged and never stops the other hooks or the handler. Plugins are
enabled with ``app.use(plugin)`` or by name (``plugins=["mark-read"]``, ``WHIZROUTER_PLUGINS``);
names are looked up in the ``whizrouter.plugins`` entry-point group, so a third-party package
ships a plugin by declaring one there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from whizrouter.errors import PluginError

log = logging.getLogger("whizrouter.plugins")

ENTRY_POINT_GROUP = "whizrouter.plugins"
HOOKS = ("startup", "shutdown", "before_handle", "after_handle", "on_error", "flush")


@runtime_checkable
class Plugin(Protocol):
    """Marker protocol for plugins: every hook listed in the module docstring is optional.

    A ``name`` attribute, when present, is used in logs.
    """


def plugin_name(plugin: object) -> str:
    """The name a plugin is logged under."""
    name = getattr(plugin, "name", None)
    return name if isinstance(name, str) else type(plugin).__name__


def installed_plugins() -> dict[str, str]:
    """Names registered in the ``whizrouter.plugins`` entry-point group, with their targets."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_plugin(name: str) -> object:
    """Instantiate the plugin registered under ``name``.

    Raises:
        PluginError: no plugin has that name (the message lists the installed ones), or it
            failed to import or construct.
    """
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(sorted(installed_plugins())) or "none"
        raise PluginError(
            f"no plugin named {name!r} is installed (installed: {known}); check the name in "
            "plugins=[...] or WHIZROUTER_PLUGINS, or install the package that provides it"
        )
    try:
        factory = matches[0].load()
        return factory() if isinstance(factory, type) or callable(factory) else factory
    except Exception as exc:
        raise PluginError(f"plugin {name!r} failed to load: {exc!r}") from exc


def has_hook(plugin: object, hook: str) -> bool:
    """Whether ``plugin`` defines ``hook``."""
    return callable(getattr(plugin, hook, None))


Hook = Callable[..., Awaitable[Any]]


def hooks_of(plugins: list[object], hook: str) -> list[tuple[object, Hook]]:
    """The ``(plugin, bound hook)`` pairs of the plugins that define ``hook``, in order."""
    found: list[tuple[object, Hook]] = []
    for plugin in plugins:
        method = getattr(plugin, hook, None)
        if method is not None:
            found.append((plugin, method))
    return found


#: Seconds a hook may run before it is cancelled, so a hung plugin cannot stall a conversation
#: (or startup) without a word.
HOOK_TIMEOUT = 30.0


async def call_hooks(hooks: list[tuple[object, Hook]], hook: str, *args: Any) -> None:
    """Run hooks found by ``hooks_of``; log (never raise) a hook's failure or hang."""
    for plugin, method in hooks:
        try:
            async with asyncio.timeout(HOOK_TIMEOUT):
                await method(*args)
        except TimeoutError:
            log.error(
                "plugin %s took more than %g s in %s; cancelled it and carrying on",
                plugin_name(plugin),
                HOOK_TIMEOUT,
                hook,
            )
        except Exception:
            log.exception("plugin %s failed in %s; carrying on", plugin_name(plugin), hook)


async def call_hook(plugins: list[object], hook: str, *args: Any) -> None:
    """Run ``hook`` on every plugin that has it; log (never raise) a hook's failure."""
    await call_hooks(hooks_of(plugins, hook), hook, *args)
