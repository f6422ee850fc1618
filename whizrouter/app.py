"""``WhizRouter``: composes the receiver, inbox, dispatcher, router, client and plugins.

Lifecycle: ``start`` freezes registration, loads plugins, opens the inbox, runs plugin
startup hooks, registers the webhook, then starts the dispatcher in its own task, so the app
can be started and stopped from different tasks (as aiohttp's cleanup context does; the
dispatcher, the context of each run and a failure of handling are ``handling``'s).
``stop`` refuses new callbacks (503), drains the dispatcher within the grace period, runs
plugin shutdown hooks and closes the inbox and client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, final

import orjson
from aiohttp import web

from whizrouter.backoff import HANDLER_RETRY, RetryPolicy
from whizrouter.bootstrap import register_at_start
from whizrouter.client import WhizardClient
from whizrouter.defaults import ApiShape
from whizrouter.dispatcher import Dispatcher
from whizrouter.errors import (
    ConfigurationError,
    RegistrationClosedError,
    WhizrouterError,
)
from whizrouter.handling import Handling
from whizrouter.health import health_report
from whizrouter.inbox.base import Inbox
from whizrouter.lifecycle import (
    Role,
    check_inbox_fits_role,
    kinds_to_store,
    log_inbox,
    log_provider,
    log_role_and_plugins,
    log_webhook_auth,
)
from whizrouter.metrics import Metrics
from whizrouter.mount import attach_bot
from whizrouter.numbers import Number, Numbers
from whizrouter.parts import Parts
from whizrouter.payloads import split_callback
from whizrouter.plugins import call_hook, check_plugins, load_plugin, plugin_name
from whizrouter.readiness import Readiness
from whizrouter.receiver import WEBHOOK_PATH, Receiver
from whizrouter.routing import Router
from whizrouter.send_journal import SendJournals
from whizrouter.settings import Settings

log = logging.getLogger("whizrouter")

#: Any plugin object: ``use`` hands back what it was given, with its own type.
PluginT = TypeVar("PluginT")


@final
class WhizRouter:
    """A WhatsApp bot: register handlers, then run it standalone, attached, or embedded.

    Every argument left as None is read from the environment (the table in
    docs/configuration.md), then falls back to its default.

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
        handler_timeout: seconds a handler run may take before it is cancelled and counted
            as failed (``WHIZROUTER_HANDLER_TIMEOUT``, 300); a handler's ``timeout=`` wins.
        retry: the default retry policy of failing handlers (5 retries, 12 to 23 s in all).
        client: a ready ``WhizardClient`` to use instead of building one.
        role: ``"all"`` (default), ``"receiver"`` (accept and store only) or ``"worker"``
            (handle only; needs a shared inbox such as NATS).
        numbers: each receiving number's name (Cloud ``phone_number_id``; on-premises the
            name of its webhook path ``/webhook/<name>``) and its own key (``WHIZARD_NUMBERS``;
            see docs/numbers.md).
        send_journal: journal handlers' sends so a retry or replay never sends one twice
            (default True; docs/exactly-one-reply.md).
        state_ttl: seconds a conversation's state lives after its last write
            (``WHIZROUTER_STATE_TTL``, 30 days).
    """

    def __init__(
        self,
        *,
        plugins: Sequence[str | object] | None = None,
        inbox: str | Inbox | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        shape: ApiShape | None = None,
        webhook_url: str | None = None,
        webhook_user: str | None = None,
        webhook_password: str | None = None,
        concurrency: int | None = None,
        max_backlog: int | None = None,
        body_limit: int | None = None,
        read_timeout: float | None = None,
        shutdown_grace: float | None = None,
        handler_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        client: WhizardClient | None = None,
        role: Role = "all",
        numbers: Mapping[str, Number | str] | None = None,
        send_journal: bool = True,
        state_ttl: float | None = None,
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
            numbers=numbers,
            state_ttl=state_ttl,
            handler_timeout=handler_timeout,
        )
        configured = self.settings.numbers
        self._numbers = Numbers(configured, self.settings) if configured else None
        self.router = Router(name="app")
        self.retry = retry or HANDLER_RETRY
        self.role: Role = role
        self._plugin_objects: list[object] = [p for p in plugins or () if not isinstance(p, str)]
        self._plugins: list[object] = []
        self._parts = Parts(
            self.settings,
            given_client=client,
            given_inbox=inbox if inbox is not None and not isinstance(inbox, str) else None,
            owns_client=client is None,
        )
        self._started = False
        # The dispatcher and its task while the app runs, and why handling failed.
        self._handling = Handling(self)
        #: Builds each event's send journal; None when ``send_journal=False``.
        self.send_journals = SendJournals(lambda: self._parts.inbox) if send_journal else None
        self.receiver = Receiver(
            auth_header=self.settings.auth_header,
            body_limit=self.settings.body_limit,
            read_timeout=self.settings.read_timeout,
            health=self.health,
            max_backlog=self.settings.max_backlog,
        )
        #: ``GET /metrics`` (see ``whizrouter.metrics``) and ``GET /readyz``.
        self.metrics = Metrics(self)
        self.readiness = Readiness(self)
        # The decorators are the app's own router's, with their signatures (``Router``).
        #: Register a message handler; see ``Router.on_message``.
        self.on_message = self.router.on_message
        #: Register a status handler; see ``Router.on_status``.
        self.on_status = self.router.on_status
        #: Register a handler for raw callbacks; see ``Router.on_raw``.
        self.on_raw = self.router.on_raw
        #: Add a router's handlers after the app's own; see ``Router.include_router``.
        self.include_router = self.router.include_router

    # Registration -----------------------------------------------------------------------

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
        """Swap the provider client or the inbox before start: for custom wiring (a client or
        an inbox built by hand, where the constructor's settings do not reach) and for tests
        (the test kit's ``BotTester`` runs an app on a fake provider and a memory inbox).

        A client given here is closed by the app at shutdown.

        Returns:
            a function that puts the parts there were before back, for once the app stopped
            (the test kit restores an app it tested this way).
        """
        if self._started:
            raise RegistrationClosedError("replace_parts() came after the app started")
        restore = self._parts.replace(client, inbox)

        def restore_when_stopped() -> None:
            if self._started:
                raise RegistrationClosedError("cannot put parts back while the app runs")
            restore()

        return restore_when_stopped

    # Parts --------------------------------------------------------------------------------

    @property
    def client(self) -> WhizardClient:
        """The provider API client handlers reach as ``ctx.client``."""
        return self._parts.client

    @property
    def numbers(self) -> Numbers | None:
        """The configured numbers (``numbers.client(name)`` sends with one's key), or None."""
        return self._numbers

    @property
    def inbox(self) -> Inbox:
        """The inbox acknowledged events wait in (built from the settings on first use)."""
        return self._parts.inbox

    @property
    def dispatcher(self) -> Dispatcher | None:
        """The running dispatcher (None before start, and in the ``receiver`` role)."""
        return self._handling.dispatcher

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
        return health_report(
            role=self.role,
            started=self._started,
            failed=self._handling.failure.error is not None,
            receiver=self.receiver,
            inbox=self.inbox,
            dispatcher=self._handling.dispatcher,
        )

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the inbox, run plugin startup hooks, register the webhook, start handling.

        Raises:
            PluginError: a plugin name is unknown, or a plugin's hook is misspelt or
                cannot be called as documented.
            BootstrapError: the webhook could not be registered.
            ConfigurationError: a setting cannot be used.
        """
        if self._started or self._handling.task is not None:
            raise WhizrouterError("this app is already running; start it once")
        self.router.freeze()
        self._plugins = [load_plugin(name) for name in self.settings.plugins]
        self._plugins += self._plugin_objects
        check_plugins(self._plugins)
        log_role_and_plugins(self.role, self._plugins)
        inbox = self.inbox
        check_inbox_fits_role(self.role, inbox)
        inbox.state_ttl = self.settings.state_ttl
        await inbox.open()
        # NATS: a connection closed for good stops the app.
        inbox.on_lost = self._handling.inbox_lost
        log_inbox(inbox)
        try:
            # A second bot on a sqlite file must fail here, before its port takes callbacks
            # it would never handle, not at its first claim.
            if self.role != "receiver":
                await inbox.take_consumer_lock()
            given = self._parts.given_client
            log_provider(
                self.settings, self.role, given=(given.shape, given.base_url) if given else None
            )
            client = self.client
            if self._numbers is not None:
                self._numbers.log_numbers()
            await call_hook(self._plugins, "startup", self)
            await register_at_start(client, self.settings, self.role, self._numbers)
            log_webhook_auth(self.settings, self.role)
            if self.role != "receiver":
                keyed = given is not None or self.settings.api_key is not None
                self._handling.start(inbox, self._plugins, self._numbers, keyed=keyed)
            await self.metrics.open()
        except BaseException:
            await self._close_resources()
            raise
        self._started = True
        # The inbox's own methods, not wrappers: a frame less for every callback.
        self.receiver.connect(inbox.append, inbox.backlog, kinds_to_store(self.role, self.router))
        self.receiver.accepting = self.role != "worker"

    @property
    def failure(self) -> BaseException | None:
        """Why event handling stopped while the app was running, or None."""
        return self._handling.failure.error

    async def wait_failed(self) -> BaseException:
        """Wait until event handling stops because of an error; return that error."""
        return await self._handling.failure.wait()

    def stop_accepting(self) -> None:
        """Answer new callbacks with 503 from now on (the first step of a shutdown)."""
        self.receiver.accepting = False

    async def stop(self) -> None:
        """Refuse new callbacks, drain running handlers within the grace period, close."""
        if not self._started:
            return
        self.receiver.accepting = False
        self._started = False
        await self._handling.drain(self.inbox, self.settings.shutdown_grace)
        await call_hook(self._plugins, "shutdown", self)
        await self._close_resources()
        log.info("stopped")

    async def _close_resources(self) -> None:
        await self.metrics.close()
        self.router.thaw()  # stopped: handlers may be added before the next start
        self._handling.clear()
        await self._parts.close()
        if self._numbers is not None:
            await self._numbers.close()

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

    async def feed(self, payload: bytes | str | dict[str, Any], number: str | None = None) -> int:
        """Store a callback body that arrived some other way (a queue, a test); ``number``
        names the receiving number of an on-premises body, as its webhook path would.

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
        return await self.inbox.append(split_callback(data, number))

    def attach(
        self, web_app: web.Application, *, path: str = WEBHOOK_PATH, health_path: str | None = None
    ) -> None:
        """Serve the webhook from an existing aiohttp app and tie the lifecycles together.

        The health check is served beside the webhook (``/wa/webhook``: ``/wa/healthz``), or
        at ``health_path`` (``""``: not at all), and so are ``readyz`` and ``metrics`` (unless
        ``WHIZROUTER_METRICS_PORT`` gives the metrics a port of their own); a path ``web_app``
        already routes raises ``ConfigurationError``. The app starts when ``web_app`` starts
        and drains when it shuts down. In the ``worker`` role no webhook is served.
        """
        attach_bot(self, web_app, path, health_path)

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
