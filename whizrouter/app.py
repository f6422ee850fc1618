"""``WhizRouter``: composes the receiver, inbox, dispatcher, router, client and plugins.

Lifecycle: ``start`` freezes registration, loads plugins, opens the inbox, runs plugin
startup hooks, registers the webhook, then starts the dispatcher in its own task, so the app
can be started and stopped from different tasks (as aiohttp's cleanup context does).
``stop`` refuses new callbacks (503), drains the dispatcher within the grace period, runs
plugin shutdown hooks and closes the inbox and client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, final

import orjson
from aiohttp import web

from whizrouter.backoff import HANDLER_RETRY, RetryPolicy
from whizrouter.bootstrap import register_webhook
from whizrouter.client import WhizardClient
from whizrouter.context import Context
from whizrouter.dispatcher import Dispatcher
from whizrouter.errors import (
    ConfigurationError,
    InboxError,
    RegistrationClosedError,
    WhizrouterError,
)
from whizrouter.filters import Predicate, TextChoice
from whizrouter.inbox.base import Inbox, StoredEvent
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.payloads import split_callback
from whizrouter.plugins import call_hook, load_plugin, plugin_name
from whizrouter.receiver import HEALTH_PATH, WEBHOOK_PATH, Receiver
from whizrouter.routing import MessageDecorator, RawHandlerT, Router, StatusDecorator
from whizrouter.settings import Settings
from whizrouter.stored_body import decode_event

log = logging.getLogger("whizrouter")

Role = Literal["all", "receiver", "worker"]
#: Any plugin object: ``use`` hands back what it was given, with its own type.
PluginT = TypeVar("PluginT")
ROLES: tuple[Role, ...] = ("all", "receiver", "worker")


@final
class WhizRouter:
    """A WhatsApp bot: register handlers, then run it standalone, attached, or embedded.

    Every argument left as None is read from the environment (see the README's
    configuration table), then falls back to its default.

    Args:
        plugins: plugin names (``"mark-read"``) or plugin objects.
        inbox: an inbox URL (``"memory"``, ``"sqlite:///inbox.db"``, ``"nats://host:4222"``)
            or an ``Inbox`` object.
        api_key: the provider key (``WHIZARD_API_KEY``).
        base_url: the provider API base URL (``WHIZARD_BASE_URL``).
        shape: the provider API shape, ``"onprem"`` or ``"cloud"`` (``WHIZARD_API_SHAPE``).
        webhook_url: public HTTPS URL to register at startup (``WHIZROUTER_WEBHOOK_URL``).
        webhook_user: Basic auth user for callbacks (``WHIZROUTER_WEBHOOK_USER``).
        webhook_password: Basic auth password for callbacks (``WHIZROUTER_WEBHOOK_PASSWORD``).
        concurrency: conversations handled at once (``WHIZROUTER_CONCURRENCY``, 64).
        max_backlog: unsettled events above which callbacks get 503 (100,000).
        body_limit: largest callback body in bytes (10 MiB).
        read_timeout: seconds to receive a body before answering 408 (10).
        shutdown_grace: seconds running handlers get at shutdown (25).
        retry: the default retry policy of failing handlers (5 retries, 12 to 23 s in all).
        client: a ready ``WhizardClient`` to use instead of building one.
        role: ``"all"`` (default), ``"receiver"`` (accept and store only) or ``"worker"``
            (handle only; needs a shared inbox such as NATS).
    """

    def __init__(
        self,
        *,
        plugins: Sequence[str | object] | None = None,
        inbox: str | Inbox | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        shape: Literal["onprem", "cloud"] | None = None,
        webhook_url: str | None = None,
        webhook_user: str | None = None,
        webhook_password: str | None = None,
        concurrency: int | None = None,
        max_backlog: int | None = None,
        body_limit: int | None = None,
        read_timeout: float | None = None,
        shutdown_grace: float | None = None,
        retry: RetryPolicy | None = None,
        client: WhizardClient | None = None,
        role: Role = "all",
    ) -> None:
        if isinstance(plugins, str | bytes):
            raise ConfigurationError(
                f"plugins= takes a list of plugin names or objects, not the string "
                f"{plugins!r:.40}: write plugins=[{plugins!r:.40}]"
            )
        plugin_names = [p for p in plugins or () if isinstance(p, str)] if plugins else None
        self.settings = Settings.resolve(
            api_key=api_key,
            base_url=base_url,
            shape=shape,
            webhook_url=webhook_url,
            webhook_user=webhook_user,
            webhook_password=webhook_password,
            inbox=inbox if isinstance(inbox, str) else None,
            plugins=plugin_names,
            concurrency=concurrency,
            max_backlog=max_backlog,
            body_limit=body_limit,
            read_timeout=read_timeout,
            shutdown_grace=shutdown_grace,
        )
        self.router = Router(name="app")
        self.retry = retry or HANDLER_RETRY
        self.role: Role = role
        self._plugin_objects: list[object] = [p for p in plugins or () if not isinstance(p, str)]
        self._plugins: list[object] = []
        self._inbox_given = inbox if inbox is not None and not isinstance(inbox, str) else None
        self._inbox: Inbox | None = None
        self._client = client
        self._owns_client = client is None
        self._dispatcher: Dispatcher | None = None
        self._dispatch_task: asyncio.Task[None] | None = None
        self._started = False
        self._failed = asyncio.Event()
        self._failure: BaseException | None = None
        self.receiver = Receiver(
            auth_header=self.settings.auth_header,
            body_limit=self.settings.body_limit,
            read_timeout=self.settings.read_timeout,
            health=self.health,
            max_backlog=self.settings.max_backlog,
        )

    # Registration -----------------------------------------------------------------------

    def on_message(
        self,
        *predicates: Predicate,
        type: str | Iterable[str] | None = None,
        text: TextChoice | Iterable[TextChoice] | None = None,
        from_: str | Iterable[str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> MessageDecorator:
        """Register a message handler on the app's own router; see ``Router.on_message``."""
        return self.router.on_message(*predicates, type=type, text=text, from_=from_, retry=retry)

    def on_status(
        self,
        *predicates: Predicate,
        status: str | Iterable[str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> StatusDecorator:
        """Register a status handler on the app's own router; see ``Router.on_status``."""
        return self.router.on_status(*predicates, status=status, retry=retry)

    def on_raw(
        self, *predicates: Predicate, retry: RetryPolicy | None = None
    ) -> Callable[[RawHandlerT], RawHandlerT]:
        """Register a handler for raw callbacks; see ``Router.on_raw``."""
        return self.router.on_raw(*predicates, retry=retry)

    def include_router(self, router: Router) -> Router:
        """Add a router's handlers after the app's own; see ``Router.include_router``."""
        return self.router.include_router(router)

    def use(self, plugin: PluginT) -> PluginT:
        """Enable a plugin object; returns it, so ``mark = app.use(MarkRead())`` works."""
        if self._started:
            raise RegistrationClosedError(
                f"app.use({plugin_name(plugin)}) came after the app started; enable plugins "
                "before `async with app`, `app.run()` or `app.attach()`"
            )
        self._plugin_objects.append(plugin)
        return plugin

    def replace_parts(
        self, *, client: WhizardClient | None = None, inbox: Inbox | None = None
    ) -> Callable[[], None]:
        """Swap the provider client or the inbox before start (tests, custom wiring).

        A client given here is closed by the app at shutdown.

        Returns:
            a function that puts the parts there were before back, for once the app stopped
            (the test kit restores an app it tested this way).
        """
        if self._started:
            raise RegistrationClosedError("replace_parts() came after the app started")
        before = (self._client, self._owns_client, self._inbox_given, self._inbox)
        if client is not None:
            self._client = client
            self._owns_client = True
        if inbox is not None:
            self._inbox_given = inbox
            self._inbox = None

        def restore() -> None:
            if self._started:
                raise RegistrationClosedError("cannot put parts back while the app runs")
            self._client, self._owns_client, self._inbox_given, self._inbox = before

        return restore

    # Parts --------------------------------------------------------------------------------

    @property
    def client(self) -> WhizardClient:
        """The provider API client handlers reach as ``ctx.client``."""
        if self._client is None:
            self._client = WhizardClient(
                api_key=self.settings.api_key,
                base_url=self.settings.base_url,
                shape=self.settings.shape,
            )
        return self._client

    @property
    def inbox(self) -> Inbox:
        """The inbox acknowledged events wait in (built from the settings on first use)."""
        if self._inbox is None:
            self._inbox = self._inbox_given or inbox_from_url(
                self.settings.inbox_url, max_backlog=self.settings.max_backlog
            )
        return self._inbox

    @property
    def dispatcher(self) -> Dispatcher | None:
        """The running dispatcher (None before start, and in the ``receiver`` role)."""
        return self._dispatcher

    @property
    def plugins(self) -> list[object]:
        """The enabled plugin objects, once started."""
        return list(self._plugins)

    @property
    def started(self) -> bool:
        """Whether ``start`` has completed and ``stop`` has not begun."""
        return self._started

    def health(self) -> dict[str, object]:
        """The fields ``GET /healthz`` reports."""
        dispatcher = self._dispatcher
        report: dict[str, object] = {
            "status": "failed"
            if self._failure is not None
            else "ok"
            if self._started and (self.receiver.accepting or self.role == "worker")
            else "unavailable",
            "role": self.role,
            "inbox": self.inbox.description,
            "backlog": self.inbox.backlog() if self._started else 0,
            "acknowledged": self.receiver.acknowledged,
            "unwanted": self.receiver.unwanted,
            "refused_full": self.receiver.refused_full,
            "refused": {str(code): n for code, n in sorted(self.receiver.refused.items())},
            "in_flight": dispatcher.in_flight if dispatcher else 0,
            "handled": dispatcher.handled if dispatcher else 0,
            "dead_lettered": dispatcher.dead_lettered if dispatcher else 0,
        }
        # Optional inbox hook: backend-specific fields (NATS: connected, worker_id, ...).
        if self._started:
            report.update(self.inbox.health())
            # An inbox that cannot reach its server stores nothing: a load balancer should
            # send callbacks elsewhere until it is back.
            if report.get("connected") is False and report["status"] == "ok":
                report["status"] = "unavailable"
        return report

    def _make_context(self, stored: StoredEvent, event: Any, contact: Any, attempt: int) -> Context:
        return Context(
            event=event,
            client=self.client,
            contact=contact,
            attempt=attempt,
            conversation=stored.conversation,
            event_id=stored.key,
            kind=stored.kind,
        )

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the inbox, run plugin startup hooks, register the webhook, start handling.

        Raises:
            PluginError: a plugin name is unknown.
            BootstrapError: the webhook could not be registered.
            ConfigurationError: a setting cannot be used.
        """
        if self._started or self._dispatch_task is not None:
            raise WhizrouterError("this app is already running; start it once")
        self.router.freeze()
        self._plugins = [load_plugin(name) for name in self.settings.plugins]
        self._plugins += self._plugin_objects
        log.info("role: %s", self.role)
        log.info(
            "plugins: %s",
            ", ".join(plugin_name(p) for p in self._plugins) if self._plugins else "none",
        )
        inbox = self.inbox
        if self.role != "all" and isinstance(inbox, MemoryInbox):
            raise ConfigurationError(
                f"role {self.role!r} needs an inbox shared with the other role (a sqlite file or "
                "nats://), but a memory inbox lives in this process only: "
                + (
                    "nothing would ever handle what it accepts"
                    if self.role == "receiver"
                    else "nothing would ever reach it"
                )
                + "; set WHIZROUTER_INBOX, or run with --role all"
            )
        await inbox.open()
        inbox.on_lost = self._inbox_lost  # NATS: a connection closed for good stops the app
        log.info(
            "inbox: %s (%s)",
            inbox.description,
            "durable: acknowledged events survive a crash"
            if inbox.durable
            else "in memory: acknowledged events are lost if the process dies",
        )
        try:
            # A second bot on a sqlite file must fail here, before its port takes callbacks
            # it would never handle, not at its first claim.
            if self.role != "receiver":
                await inbox.take_consumer_lock()
            configured_client = self._client is not None
            client = self.client
            missing = [
                name
                for name, value in (
                    ("WHIZARD_API_KEY", self.settings.api_key),
                    ("WHIZARD_BASE_URL", self.settings.base_url),
                )
                if value is None
            ]
            if configured_client:
                log.info("provider: %s API at %s (client given)", client.shape, client.base_url)
            elif missing:
                log.warning(
                    "provider: %s not set; %s, but replies and mark-read will fail until you "
                    "set %s",
                    " and ".join(missing),
                    "callbacks are received and stored"
                    if self.role == "receiver"
                    else "events are handled",
                    " and ".join(missing),
                )
            else:
                log.info("provider: %s API at %s", self.settings.shape, self.settings.base_url)
            await call_hook(self._plugins, "startup", self)
            if self.role == "worker":
                log.info("webhook registration: skipped (a worker receives no callbacks)")
            elif self.settings.webhook_url is not None:
                await register_webhook(client, self.settings)
            else:
                log.info("webhook registration: skipped (WHIZROUTER_WEBHOOK_URL is not set)")
            if self.role != "worker":
                log.info(
                    "webhook auth: %s",
                    "Basic (WHIZROUTER_WEBHOOK_USER and WHIZROUTER_WEBHOOK_PASSWORD)"
                    if self.settings.auth_header
                    else "off: anyone who knows the URL can post callbacks; set "
                    "WHIZROUTER_WEBHOOK_USER and WHIZROUTER_WEBHOOK_PASSWORD in production",
                )
            if self.role != "receiver":
                self._dispatcher = Dispatcher(
                    inbox,
                    self.router,
                    decode=decode_event,
                    make_context=self._make_context,
                    plugins=self._plugins,
                    concurrency=self.settings.concurrency,
                    retry=self.retry,
                )
                self._dispatch_task = asyncio.create_task(self._dispatcher.run())
                self._dispatch_task.add_done_callback(self._dispatcher_ended)
                log.info("dispatcher: up to %d conversations at once", self.settings.concurrency)
        except BaseException:
            await self._close_resources()
            raise
        self._started = True
        # The inbox's own methods, not wrappers: a frame less for every callback.
        self.receiver.connect(inbox.append, inbox.backlog, self._kinds_to_store())
        self.receiver.accepting = self.role != "worker"

    def _kinds_to_store(self) -> frozenset[str] | None:
        """The event kinds this process's receiver stores, or None for every kind.

        In the ``all`` role the dispatcher would settle a message or status without running
        anything when no handler takes its kind, so the receiver does not store it: a bot
        without an ``on_status`` handler pays nothing for the three statuses that follow each
        message it sends. A ``receiver`` stores every kind: the workers' handlers decide.
        """
        if self.role != "all":
            return None
        handled = self.router.handled_kinds()
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

    def _dispatcher_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None or not self._started:
            return
        failure = task.exception()
        # The dispatcher's task groups wrap the one error that stopped it: report that one.
        while isinstance(failure, BaseExceptionGroup) and len(failure.exceptions) == 1:
            failure = failure.exceptions[0]
        self._fail(failure)

    def _inbox_lost(self, failure: BaseException) -> None:
        """The inbox can never work again (a NATS connection closed for good)."""
        if self._started and self._failure is None:
            self._fail(failure)

    def _fail(self, failure: BaseException | None) -> None:
        # Handling stopped for good: refuse callbacks (the provider keeps them) and say so.
        self.receiver.accepting = False
        self._failure = failure
        self._failed.set()
        log.critical(
            "event handling stopped: %s; callbacks get 503 (the provider keeps them) until "
            "the bot is restarted with the cause fixed (`whizrouter run` exits, so that its "
            "supervisor restarts it)",
            failure,
        )

    @property
    def failure(self) -> BaseException | None:
        """Why event handling stopped while the app was running, or None."""
        return self._failure

    async def wait_failed(self) -> BaseException:
        """Wait until event handling stops because of an error; return that error."""
        await self._failed.wait()
        assert self._failure is not None
        return self._failure

    def stop_accepting(self) -> None:
        """Answer new callbacks with 503 from now on (the first step of a shutdown)."""
        self.receiver.accepting = False

    async def stop(self) -> None:
        """Refuse new callbacks, drain running handlers within the grace period, close."""
        if not self._started:
            return
        self.receiver.accepting = False
        self._started = False
        dispatcher, task = self._dispatcher, self._dispatch_task
        if dispatcher is not None and task is not None:
            left = await dispatcher.drain(self.settings.shutdown_grace)
            with contextlib.suppress(Exception):  # already logged by _dispatcher_ended
                await task
            await self._release_unstarted(dispatcher)
            left += 0 if self.inbox.durable else self.inbox.backlog() - left
            if left and self.inbox.durable:
                log.info("shutdown: %d events left in the inbox for the next start", left)
            elif left:
                log.warning("shutdown: dropped %d events (memory inbox)", left)
        await call_hook(self._plugins, "shutdown", self)
        await self._close_resources()
        log.info("stopped")

    async def _release_unstarted(self, dispatcher: Dispatcher) -> None:
        """Tell a durable inbox which claimed events never started, so they count no attempt.

        Without this, the next start hands out every event this process claimed as one a
        handler may have started (``ctx.attempt`` 2), as after a crash.
        """
        if not self.inbox.durable:
            return
        try:
            await self.inbox.release(dispatcher.unstarted())
        except Exception as exc:
            log.warning(
                "shutdown: could not hand the unstarted events back (%s); the next start "
                "treats them as possibly started (ctx.attempt 2)",
                exc,
                exc_info=None if isinstance(exc, InboxError) else exc,  # explains itself
            )

    async def _close_resources(self) -> None:
        self.router.thaw()  # stopped: handlers may be added before the next start
        self._dispatcher = None
        self._dispatch_task = None
        if self._inbox is not None:
            await self._inbox.close()
        if self._client is not None and self._owns_client:
            await self._client.close()

    async def __aenter__(self) -> WhizRouter:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Ways in ----------------------------------------------------------------------------------

    async def feed(self, payload: bytes | str | dict[str, Any]) -> int:
        """Store a callback body that arrived some other way (a queue, a test).

        Every event is stored, of whatever kind: unlike the webhook, which leaves out kinds
        no handler takes, a fed event of such a kind is settled by the dispatcher.

        Returns:
            how many of its events were new (redeliveries are dropped).

        Raises:
            ValueError: the body is not a JSON object.
            WhizrouterError: the app is not started.
        """
        if not self._started:
            raise WhizrouterError("feed() needs a started app: use it inside `async with app:`")
        data = orjson.loads(payload) if isinstance(payload, bytes | str) else payload
        if not isinstance(data, dict):
            raise ValueError(f"a callback is a JSON object, not {type(data).__name__}")
        return await self.inbox.append(split_callback(data))

    def attach(
        self, web_app: web.Application, *, path: str = WEBHOOK_PATH, health_path: str = HEALTH_PATH
    ) -> None:
        """Serve the webhook from an existing aiohttp app and tie the lifecycles together.

        The app starts when ``web_app`` starts and drains when it shuts down. In the
        ``worker`` role only the health check is served.
        """
        if self.role != "worker":
            web_app.router.add_post(
                path, self.receiver.webhook, expect_handler=self.receiver.expect_continue
            )
        if health_path:
            web_app.router.add_get(health_path, self.receiver.healthz)

        async def lifespan(_: web.Application) -> Any:
            await self.start()
            yield
            await self.stop()

        web_app.cleanup_ctx.append(lifespan)

    def make_web_app(self) -> web.Application:
        """A fresh aiohttp app serving this bot at ``/webhook`` and ``/healthz``."""
        web_app = web.Application()
        self.attach(web_app)
        return web_app

    def run(self, host: str = "0.0.0.0", port: int = 8080) -> None:
        """Serve until SIGTERM or SIGINT, then drain and return (see ``whizrouter run``).

        Runs on uvloop when it is installed; ``WHIZROUTER_LOOP=asyncio`` keeps asyncio's own
        loop (see ``whizrouter.runtime``).

        Raises:
            ConfigurationError: ``WHIZROUTER_LOOP`` is unknown or names a missing loop.
        """
        from whizrouter.runtime import run_with_loop
        from whizrouter.server import serve_forever

        run_with_loop(serve_forever(self, host=host, port=port))
