"""The steps of a bot's start and stop that say what they decided, one log line each.

An operator reads the start of the log to learn what the process will do: its role, its
plugins, its inbox, its provider, whether it registered the webhook, whether callbacks need
auth and which event kinds it stores; ``WhizRouter.start`` takes these steps in that order.
At a stop, ``drain_handlers`` gives running handlers their grace period and says what was
left. The process roles are named here too, since the role decides most of the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Literal

from whizrouter.dispatcher import Dispatcher
from whizrouter.errors import ConfigurationError, InboxError
from whizrouter.inbox.base import Inbox
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.plugins import plugin_name
from whizrouter.routing import Router
from whizrouter.settings import Settings

log = logging.getLogger("whizrouter")

#: What a process does: ``all`` (receive and handle), ``receiver`` (accept and store only) or
#: ``worker`` (handle only; needs an inbox shared with the receivers).
Role = Literal["all", "receiver", "worker"]
ROLES: tuple[Role, ...] = ("all", "receiver", "worker")


def log_role_and_plugins(role: Role, plugins: Sequence[object]) -> None:
    """Say the process's role and the plugins it runs."""
    log.info("role: %s", role)
    log.info("plugins: %s", ", ".join(plugin_name(p) for p in plugins) if plugins else "none")


def check_inbox_fits_role(role: Role, inbox: Inbox) -> None:
    """Refuse a role that splits intake from handling over an inbox no other process sees.

    Raises:
        ConfigurationError: the role is not ``all`` and the inbox is a ``MemoryInbox``.
    """
    if role == "all" or not isinstance(inbox, MemoryInbox):
        return
    raise ConfigurationError(
        f"role {role!r} needs an inbox shared with the other role (a sqlite file or nats://), "
        "but a memory inbox lives in this process only: "
        + (
            "nothing would ever handle what it accepts"
            if role == "receiver"
            else "nothing would ever reach it"
        )
        + "; set WHIZROUTER_INBOX, or run with --role all"
    )


def log_inbox(inbox: Inbox) -> None:
    """Say where acknowledged events wait and whether they survive a crash."""
    log.info(
        "inbox: %s (%s)",
        inbox.description,
        "durable: acknowledged events survive a crash"
        if inbox.durable
        else "in memory: acknowledged events are lost if the process dies",
    )


def log_provider(settings: Settings, role: Role, *, given: tuple[str, str | None] | None) -> None:
    """Say which provider API replies go to, or which setting is missing for them.

    Args:
        given: the shape and base URL of a client given to the app, or None when the app
            builds its own from the settings.
    """
    if given is not None:
        log.info("provider: %s API at %s (client given)", *given)
        return
    if settings.numbers and settings.api_key is None:
        log.info(
            "provider: a key per number (numbers= or WHIZARD_NUMBERS); no WHIZARD_API_KEY, so "
            "an event that names no number is dead-lettered"
        )
        return
    missing = [
        name
        for name, value in (
            ("WHIZARD_API_KEY", settings.api_key),
            ("WHIZARD_BASE_URL", settings.base_url),
        )
        if value is None
    ]
    if missing:
        log.warning(
            "provider: %s not set; %s, but replies and mark-read will fail until you set %s",
            " and ".join(missing),
            "callbacks are received and stored" if role == "receiver" else "events are handled",
            " and ".join(missing),
        )
    else:
        log.info("provider: %s API at %s", settings.shape, settings.base_url)


def log_webhook_auth(settings: Settings, role: Role) -> None:
    """Say whether callbacks must carry the Basic auth header (a worker takes none)."""
    if role == "worker":
        return
    log.info(
        "webhook auth: %s",
        "Basic (WHIZROUTER_WEBHOOK_USER and WHIZROUTER_WEBHOOK_PASSWORD)"
        if settings.auth_header
        else "off: anyone who knows the URL can post callbacks; set "
        "WHIZROUTER_WEBHOOK_USER and WHIZROUTER_WEBHOOK_PASSWORD in production",
    )


def kinds_to_store(role: Role, router: Router) -> frozenset[str] | None:
    """The event kinds this process's receiver stores, or None for every kind.

    In the ``all`` role the dispatcher would settle a message or status without running
    anything when no handler takes its kind, so the receiver does not store it: a bot
    without an ``on_status`` handler pays nothing for the three statuses that follow each
    message it sends. A ``receiver`` stores every kind: the workers' handlers decide.
    """
    if role != "all":
        return None
    handled = router.handled_kinds()
    skipped = [kind for kind in ("message", "status") if kind not in handled]
    if not skipped:
        return None  # nothing to leave out: no callback pays for looking
    log.info(
        "not stored: %s events, since no handler takes them (answered 200 and counted as "
        "unwanted in /healthz; register %s to receive them)",
        " and ".join(skipped),
        " and ".join(f"an on_{kind} handler" for kind in skipped),
    )
    # Raw events are always stored: rare, and what a bot's operator wants to see.
    return frozenset(("raw", *handled))


async def drain_handlers(
    dispatcher: Dispatcher, task: asyncio.Task[None], inbox: Inbox, grace: float
) -> None:
    """Give running handlers ``grace`` seconds, hand back what never started, say what is left.

    A durable inbox is told which claimed events no handler started, so they count no
    attempt at the next start; without that, the next start would hand out every event this
    process claimed as one a handler may have started (``ctx.attempt`` 2), as after a crash.
    """
    left = await dispatcher.drain(grace)
    with contextlib.suppress(Exception):  # the app logged it when the dispatcher ended
        await task
    if inbox.durable:
        try:
            await inbox.release(dispatcher.unstarted())
        except Exception as exc:
            log.warning(
                "shutdown: could not hand the unstarted events back (%s); the next start "
                "treats them as possibly started (ctx.attempt 2)",
                exc,
                exc_info=None if isinstance(exc, InboxError) else exc,  # explains itself
            )
    left += 0 if inbox.durable else inbox.backlog() - left
    if left and inbox.durable:
        log.info("shutdown: %d events left in the inbox for the next start", left)
    elif left:
        log.warning("shutdown: dropped %d events (memory inbox)", left)


class HandlingFailure:
    """Why event handling stopped for good while the app ran, and a wait for it.

    ``whizrouter run`` waits on it and exits, so that a supervisor restarts the process.
    """

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._happened = asyncio.Event()

    def record(self, error: BaseException) -> None:
        """Keep ``error`` as the cause and say what callbacks get until a restart."""
        self.error = error
        self._happened.set()
        log.critical(
            "event handling stopped: %s; callbacks get 503 (the provider keeps them) until "
            "the bot is restarted with the cause fixed (`whizrouter run` exits, so that its "
            "supervisor restarts it)",
            error,
        )

    async def wait(self) -> BaseException:
        """Wait until a failure is recorded; return it."""
        await self._happened.wait()
        assert self.error is not None
        return self.error


def why_dispatcher_ended(task: asyncio.Task[None]) -> BaseException | None:
    """The error that ended the dispatcher's task, or None for a clean end or a cancel.

    The dispatcher's task groups wrap the one error that stopped it: that one is returned.
    """
    if task.cancelled() or task.exception() is None:
        return None
    error = task.exception()
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
