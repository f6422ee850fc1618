"""The event handling of a running app: its dispatcher, the context of each run, its end.

At each start of an app that handles events (any role but ``receiver``), ``Handling.start``
builds the ``Dispatcher`` with the decoder of stored events and the factory of each run's
``Context`` (both per receiving number when the app has numbers), and runs it in a task of its
own, so that the app can be started and stopped from different tasks. Handling fails for good
when that task ends with an error or the inbox is lost (a NATS connection closed for good):
callbacks are refused from then on and the cause is kept (``HandlingFailure``). At a stop,
``drain`` gives running handlers their grace period (``lifecycle.drain_handlers``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from whizrouter.context import Context
from whizrouter.dispatcher import Dispatcher
from whizrouter.lifecycle import HandlingFailure, drain_handlers, why_dispatcher_ended
from whizrouter.numbers import ContextFactory, Decoder, Numbers
from whizrouter.stored_body import decode_event

if TYPE_CHECKING:
    from whizrouter.backoff import RetryPolicy
    from whizrouter.client import WhizardClient
    from whizrouter.inbox.base import Inbox, StoredEvent
    from whizrouter.receiver import Receiver
    from whizrouter.routing import Router
    from whizrouter.send_journal import SendJournals
    from whizrouter.settings import Settings

log = logging.getLogger("whizrouter")


class HandlingApp(Protocol):
    """What the handling reads of a ``WhizRouter`` (declared here: the app imports this)."""

    router: Router
    retry: RetryPolicy
    settings: Settings
    receiver: Receiver
    send_journals: SendJournals | None

    @property
    def client(self) -> WhizardClient: ...
    @property
    def started(self) -> bool: ...


class Handling:
    """The dispatcher of one app and its task while it runs, and why handling failed."""

    def __init__(self, app: HandlingApp) -> None:
        self._app = app
        self.dispatcher: Dispatcher | None = None
        self.task: asyncio.Task[None] | None = None
        self.failure = HandlingFailure()

    def make_context(self, stored: StoredEvent, event: Any, contact: Any, attempt: int) -> Context:
        """The ``Context`` of a run: the app's client, and its send journals."""
        app = self._app
        return Context(
            event=event,
            client=app.client,
            contact=contact,
            attempt=attempt,
            conversation=stored.conversation,
            event_id=stored.key,
            kind=stored.kind,
            send_journals=app.send_journals,
        )

    def start(
        self, inbox: Inbox, plugins: list[object], numbers: Numbers | None, *, keyed: bool
    ) -> None:
        """Build the dispatcher and start its task; ``keyed``: the app has a key of its own
        (given a client, or a ``WHIZARD_API_KEY``) for events that name no number."""
        app = self._app
        decode: Decoder = decode_event
        make_context: ContextFactory = self.make_context
        if numbers is not None:
            decode, make_context = numbers.dispatching(decode, make_context, keyed_default=keyed)
        self.dispatcher = Dispatcher(
            inbox,
            app.router,
            decode=decode,
            make_context=make_context,
            plugins=plugins,
            concurrency=app.settings.concurrency,
            retry=app.retry,
            handler_timeout=app.settings.handler_timeout,
        )
        self.task = asyncio.create_task(self.dispatcher.run())
        self.task.add_done_callback(self._dispatcher_ended)
        log.info("dispatcher: up to %d conversations at once", app.settings.concurrency)

    def _dispatcher_ended(self, task: asyncio.Task[None]) -> None:
        error = why_dispatcher_ended(task)
        if error is not None and self._app.started:
            self._fail(error)

    def inbox_lost(self, error: BaseException) -> None:
        """The inbox can never work again (a NATS connection closed for good)."""
        if self._app.started and self.failure.error is None:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        # Handling stopped for good: refuse callbacks (the provider keeps them) and say so.
        self._app.receiver.accepting = False
        self.failure.record(error)

    async def drain(self, inbox: Inbox, grace: float) -> None:
        """Let running handlers finish within ``grace`` seconds (see ``drain_handlers``)."""
        dispatcher, task = self.dispatcher, self.task
        if dispatcher is not None and task is not None:
            await drain_handlers(dispatcher, task, inbox, grace)

    def clear(self) -> None:
        """Forget the dispatcher and its task, once the app stopped."""
        self.dispatcher = None
        self.task = None
