"""Plugins: the hooks a plugin may define, their discovery by name, and running them.

A plugin is any object with some of the hooks that :class:`Plugin` declares, all optional:
``startup(app)``, ``shutdown(app)``, ``before_handle(event, ctx)``, ``after_handle(event,
ctx)``, ``on_error(event, ctx, exc)`` and ``flush(app)``. When the app starts, every plugin is
checked (:func:`check_plugins`) before any hook runs: a hook that is not a coroutine function,
that cannot take its arguments, or a method whose name is a near miss of a hook's
(``before_handler``, ``on_startup``) stops startup with a :class:`~whizrouter.errors.PluginError`
that names the plugin, the hook and what to write instead, so a hook never silently fails to run.

A hook that raises, or runs longer than ``HOOK_TIMEOUT`` (30 s, then it is cancelled), is
logged and never stops the other hooks or the handler. Plugins are enabled with
``app.use(plugin)`` or by name (``plugins=["mark-read"]``, ``WHIZROUTER_PLUGINS``); names are
looked up in the ``whizrouter.plugins`` entry-point group, so a third-party package ships a
plugin by declaring one there.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Final, Protocol

from whizrouter.context import Context
from whizrouter.errors import PluginError

log = logging.getLogger("whizrouter.plugins")

ENTRY_POINT_GROUP = "whizrouter.plugins"


class Plugin(Protocol):
    """The hooks a plugin may define; every one is optional.

    A plugin defines only the hooks it needs, as ``async def`` methods with these parameters
    (any names; extra parameters need defaults). A ``name`` attribute, when present, is used
    in logs and errors. Subclassing ``Plugin`` is optional: mypy then checks the hooks a
    plugin defines against these signatures, and the ones it leaves out are never called.

    ``app`` is the running :class:`~whizrouter.WhizRouter`; it is typed ``Any`` here only
    because the app module imports this one. Annotate it as ``WhizRouter`` in a plugin.
    """

    # Each body is ``return None`` rather than ``...``: mypy would take ``...`` for abstract
    # and make a subclass define every hook.

    async def startup(self, app: Any) -> None:
        """Prepare, once the inbox is open and before the first event is handled."""
        return None

    async def shutdown(self, app: Any) -> None:
        """Finish, after the handlers drained; also finish any deferred work here."""
        return None

    async def before_handle(self, event: Any, ctx: Context) -> None:
        """Run before each handler run (each attempt) of an event a handler takes."""
        return None

    async def after_handle(self, event: Any, ctx: Context) -> None:
        """Run after each handler run that returned."""
        return None

    async def on_error(self, event: Any, ctx: Context, exc: BaseException) -> None:
        """Run after each handler run that raised ``exc`` (retried or dead-lettered later)."""
        return None

    async def flush(self, app: Any) -> None:
        """Finish at once whatever the plugin deferred (a batch, a timer).

        The test kit calls it after every callback settled, so a test sees the plugin's
        provider calls.
        """
        return None


#: Each hook's documented parameters, read from :class:`Plugin`.
HOOK_PARAMETERS: Final[dict[str, tuple[str, ...]]] = {
    hook: tuple(inspect.signature(getattr(Plugin, hook)).parameters)[1:]
    for hook in ("startup", "shutdown", "before_handle", "after_handle", "on_error", "flush")
}
#: How alike a method name and a hook name must be (difflib's ratio) to be taken for a typo:
#: ``on_startup``, ``onerror`` and ``before_handler`` are; ``status`` and ``setup`` are not.
_NEAR_MISS = 0.8


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


def check_plugins(plugins: Iterable[object]) -> None:
    """Refuse plugins whose hooks would not run as written.

    Raises:
        PluginError: a hook is not a coroutine function, cannot take its documented
            arguments, or a public method's name is a near miss of a hook's; one line per
            problem, each naming the plugin, the hook and what to write instead.
    """
    problems = [problem for plugin in plugins for problem in _problems(plugin)]
    if problems:
        raise PluginError("\n".join(problems))


def _problems(plugin: object) -> list[str]:
    who = f"plugin {plugin_name(plugin)}"
    if isinstance(plugin, type):
        return [
            f"{who} is a class; enable an instance of it: app.use({plugin.__name__}()) or "
            f"plugins=[{plugin.__name__}()]"
        ]
    problems: list[str] = []
    for hook, parameters in HOOK_PARAMETERS.items():
        method = getattr(plugin, hook, None)
        if method is None:
            continue
        fix = f"write `async def {hook}(self, {', '.join(parameters)}) -> None`"
        if not inspect.iscoroutinefunction(method):
            what = "a plain function" if callable(method) else f"a {type(method).__name__}"
            problems.append(f"{who}: hook {hook} is {what}, but hooks are awaited; {fix}")
            continue
        try:
            inspect.signature(method).bind(*parameters)
        except TypeError as exc:
            problems.append(
                f"{who}: hook {hook} cannot be called as {hook}({', '.join(parameters)}) "
                f"({exc}); {fix}"
            )
        except ValueError:
            pass  # no signature to read (a builtin): nothing to check
    for attribute in dir(plugin):
        if attribute.startswith("_") or attribute in HOOK_PARAMETERS:
            continue
        near = difflib.get_close_matches(attribute, HOOK_PARAMETERS, n=1, cutoff=_NEAR_MISS)
        # Static lookup: reading a property could run code; only methods can be mistaken hooks.
        if near and callable(inspect.getattr_static(plugin, attribute, None)):
            hook = near[0]
            problems.append(
                f"{who}: {attribute} is not a plugin hook, so it would never run; if it is "
                f"meant as one, rename it to {hook} (`async def {hook}(self, "
                f"{', '.join(HOOK_PARAMETERS[hook])}) -> None`), otherwise give it a name "
                f"that is not so close to {hook} (or start it with _)"
            )
    return problems


Hook = Callable[..., Awaitable[Any]]


def hooks_of(plugins: list[object], hook: str) -> list[tuple[object, Hook]]:
    """The ``(plugin, bound hook)`` pairs of the plugins that define ``hook``, in order."""
    found: list[tuple[object, Hook]] = []
    unset = getattr(Plugin, hook)
    for plugin in plugins:
        method = getattr(plugin, hook, None)
        # A hook a ``Plugin`` subclass inherits does nothing: not worth a call per event.
        if method is not None and getattr(type(plugin), hook, None) is not unset:
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
