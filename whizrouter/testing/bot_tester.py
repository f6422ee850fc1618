"""``BotTester``: drive a whole bot over real HTTP against a fake provider.

It serves the app on a loopback test server, points its client at a ``FakeProvider``, swaps
its inbox for a memory one, skips every retry wait (the client's, the app's and each
handler's own: each decision to retry or give up stays as in production), posts callbacks to
``/webhook`` like the provider does, and waits until the handlers have settled every event and
the plugins have flushed what they deferred. A handler that gives up on an event fails the
test with ``HandlerFailedError``. Closing the tester puts the app's own parts back::

    async def test_echo(bot_tester):
        bot = await bot_tester(app)
        assert await bot.text("hi") == ["echo: hi"]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, Protocol, Self

import aiohttp
import anyio
import orjson
from aiohttp.test_utils import TestServer

from whizrouter.app import WhizRouter
from whizrouter.backoff import CLIENT_RETRY, RetryPolicy
from whizrouter.defaults import ApiShape
from whizrouter.errors import WhizrouterError
from whizrouter.inbox.base import DeadLetter
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.plugins import call_hook
from whizrouter.routing import HandlerSpec
from whizrouter.state import State
from whizrouter.testing.callbacks import (
    DEFAULT_WA_ID,
    PHONE_NUMBER_ID,
    message_callback,
    status_callback,
)
from whizrouter.testing.callbacks import text_callback as build_text_callback
from whizrouter.testing.fake_provider import FakeProvider
from whizrouter.testing.recorded_call import RecordedCall
from whizrouter.testing.replies import Replies
from whizrouter.testing.sent import SentMessage, sent_messages


class HandlerFailedError(AssertionError):
    """A handler gave up on an event during a ``BotTester`` send: the test fails with it.

    Attributes:
        dead_letters: the events dead-lettered during the send, with handler, error and
            attempts.
    """

    def __init__(self, dead_letters: list[DeadLetter]) -> None:
        self.dead_letters = dead_letters
        lines = [
            f"{letter.handler} gave up on {letter.kind} event {letter.key} after "
            f"{letter.attempts} attempt{'' if letter.attempts == 1 else 's'}: {letter.error}"
            for letter in dead_letters
        ]
        super().__init__(
            "; ".join(lines) + " (the traceback is in the captured log; to test "
            "dead-lettering itself, use bot_tester(app, raise_errors=False))"
        )


#: Tests wait no shutdown grace longer than this: a handler still running after the test has
#: failed already, and is cancelled.
TEST_SHUTDOWN_GRACE = 1.0


class BotTester:
    """A bot under test: its webhook on a loopback server, its provider a ``FakeProvider``.

    Args:
        app: the bot, not running (the same app may be tested again once this one closed,
            and runs with its own parts again after that).
        provider: the fake provider to use; by default one is started and closed here.
        shape: the API shape of the provider started here, ``"onprem"`` or ``"cloud"``
            (default: the app's); callbacks are then built in that shape too.
        timeout: seconds to wait for the handlers to settle a callback.
        raise_errors: raise ``HandlerFailedError`` from ``send`` (and the helpers built on it)
            when a handler gives up on an event; ``False`` to test dead letters themselves.
    """

    def __init__(
        self,
        app: WhizRouter,
        *,
        provider: FakeProvider | None = None,
        shape: ApiShape | None = None,
        timeout: float = 10.0,
        raise_errors: bool = True,
    ) -> None:
        if provider is not None and shape is not None and provider.shape != shape:
            raise ValueError(
                f"BotTester(shape={shape!r}) contradicts the {provider.shape!r} provider given; "
                "pass one of them"
            )
        self.app = app
        self.provider = provider or FakeProvider(shape=shape or app.settings.shape)
        self._owns_provider = provider is None
        self.timeout = timeout
        self.raise_errors = raise_errors
        self._server: TestServer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._restore: list[Callable[[], None]] = []
        #: Per event key, the sends answered from the send journal instead of the provider,
        #: as ``(slot, message id)``: slot ``"#1"`` is a run's first journaled send,
        #: ``"k:<key>"`` one sent with ``idempotency_key=``.
        self.answered_from_journal: dict[str, list[tuple[str, str]]] = {}

    async def start(self) -> None:
        """Start the provider (if owned), then the bot behind a loopback HTTP server."""
        app = self.app
        if app.started or app.dispatcher is not None:
            raise WhizrouterError(
                "this app is running already (another BotTester, or app.run()); one app runs "
                "once at a time: close the other tester first, or build a second app"
            )
        if self._owns_provider:
            await self.provider.start()
        # Test wiring, set before start and undone by close(): the fake provider, a
        # throwaway inbox, retries without their waits (the client's, the app's and the
        # handlers' own), and a short shutdown grace.
        self._restore.append(
            app.replace_parts(
                client=self.provider.client(retry=without_waits(CLIENT_RETRY)),
                inbox=MemoryInbox(),
            )
        )
        retry, settings = app.retry, app.settings

        def restore_app() -> None:
            app.retry, app.settings = retry, settings

        self._restore.append(restore_app)
        app.retry = without_waits(app.retry)
        app.settings = replace(
            settings, shutdown_grace=min(settings.shutdown_grace, TEST_SHUTDOWN_GRACE)
        )
        self._restore.append(app.router.replace_handlers(_without_retry_waits))
        journals = app.send_journals
        if journals is not None:
            journals.observer = self._answered_from_journal

            def stop_observing() -> None:
                journals.observer = None

            self._restore.append(stop_observing)
        self._server = TestServer(app.make_web_app())
        await self._server.start_server()
        self._session = aiohttp.ClientSession()

    def _answered_from_journal(self, event_key: str, slot: str, message_id: str) -> None:
        self.answered_from_journal.setdefault(event_key, []).append((slot, message_id))

    async def close(self) -> None:
        """Stop the bot (draining it) and the provider; give the app its own parts back."""
        if self._session is not None:
            await self._session.close()
        if self._server is not None:
            await self._server.close()
        if self._owns_provider:
            await self.provider.close()
        while self._restore:
            self._restore.pop()()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def post(self, body: dict[str, Any] | bytes, *, number: str | None = None) -> int:
        """POST a callback body to the bot's webhook as the provider would; return the status.

        ``number`` posts to that number's own path, ``/webhook/<number>``, as the provider
        does for an on-premises number of an app with ``numbers=``.
        """
        assert self._server is not None and self._session is not None, "start() first"
        headers = {"Content-Type": "application/json"}
        if self.app.settings.auth_header:
            headers["Authorization"] = self.app.settings.auth_header
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        async with self._session.post(
            self._server.make_url("/webhook" if number is None else f"/webhook/{number}"),
            data=data,
            headers=headers,
        ) as response:
            return response.status

    async def send(
        self, body: dict[str, Any] | bytes, *, number: str | None = None
    ) -> list[RecordedCall]:
        """Post a callback, expect 200, wait for its handlers; return the provider calls made.

        ``number``: see ``post``.

        The calls are those made while this send waited: sends run at the same time share
        them (``text`` picks the replies to its own sender).

        Raises:
            AssertionError: the webhook did not answer 200, or the handlers did not settle
                within ``timeout`` (the message names the handlers still running).
            HandlerFailedError: a handler gave up on an event (with ``raise_errors``).
        """
        before = len(self.provider.calls)
        dead_before = len(await self.dead_letters()) if self.raise_errors else 0
        status = await self.post(body, number=number)
        assert status == 200, f"the webhook answered {status}, not 200"
        await self.settled()
        if self.raise_errors:
            dead = (await self.dead_letters())[dead_before:]
            if dead:
                raise HandlerFailedError(dead)
        return self.provider.calls[before:]

    async def settled(self) -> None:
        """Wait until every stored event has been settled by the handlers, then have the
        plugins do what they deferred (their ``flush`` hook: mark-read's coalesced marks).

        Raises:
            AssertionError: they did not within ``timeout``; the message names the handlers
                still running.
        """
        dispatcher = self.app.dispatcher
        assert dispatcher is not None, "the bot has no dispatcher (receiver role?)"
        try:
            with anyio.fail_after(self.timeout):
                await dispatcher.wait_idle()
                await call_hook(self.app.plugins, "flush", self.app)
        except TimeoutError:
            running = dispatcher.running_handlers()
            raise AssertionError(
                f"the handlers did not settle within {self.timeout:g} s; "
                + (f"still running: {', '.join(running)}" if running else "none is running")
                + "; if they are only slow, raise bot_tester(app, timeout=...)"
            ) from None

    async def dead_letters(self) -> list[DeadLetter]:
        """The events whose handler kept failing (or could not run), oldest first."""
        return await self.app.inbox.dead_letters()

    async def state(self, wa_id: str = DEFAULT_WA_ID) -> str | None:
        """The committed state of ``wa_id``'s conversation (its full name), or None."""
        stored = await self.app.inbox.load_state(wa_id)
        return None if stored is None else stored.state

    async def state_data(self, wa_id: str = DEFAULT_WA_ID) -> dict[str, Any]:
        """The committed data of ``wa_id``'s conversation state (empty without one)."""
        stored = await self.app.inbox.load_state(wa_id)
        return {} if stored is None else dict(stored.data)

    async def set_state(
        self,
        state: State | str | None,
        data: Mapping[str, Any] | None = None,
        *,
        wa_id: str = DEFAULT_WA_ID,
    ) -> None:
        """Put ``wa_id``'s conversation in ``state`` with ``data``, as if earlier messages had
        (None and no data: no state)."""
        name = state.name if isinstance(state, State) else state
        await self.app.inbox.put_state(wa_id, name, dict(data or {}))

    async def text(
        self,
        text: str,
        *,
        wa_id: str = DEFAULT_WA_ID,
        name: str = "Test User",
        message_id: str | None = None,
        number: str | None = None,
    ) -> Replies:
        """Send a text message from ``wa_id``; return what the bot sent to ``wa_id`` meanwhile.

        The answer is the list of the bodies of the texts sent (``== ["echo: hi"]``), and
        carries every message sent typed: ``.messages``, ``.buttons``, ``.rows``,
        ``.media``, ``.templates``, ``.reactions`` (:class:`~whizrouter.testing.Replies`).

        ``number`` names the receiving number of an app with ``numbers=``: the Cloud
        ``phone_number_id`` in the callback, or on-premises the path it is posted to.
        """
        calls = await self.send(
            build_text_callback(
                text,
                wa_id=wa_id,
                name=name,
                message_id=message_id,
                shape=self.provider.shape,
                phone_number_id=PHONE_NUMBER_ID if number is None else number,
            ),
            number=self._path_number(number),
        )
        return Replies(sent_messages(calls, to=wa_id))

    async def message(
        self,
        type: str,
        payload: Mapping[str, Any] | None,
        *,
        wa_id: str = DEFAULT_WA_ID,
        name: str = "Test User",
        message_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        number: str | None = None,
    ) -> list[RecordedCall]:
        """Send a message of any type (``"image"``, ``"interactive"``, ``"location"``, ...)
        from ``wa_id``, in the provider's shape; return the provider calls made. ``number``:
        see ``text``.

        ``payload`` is what the provider puts under the ``type`` key, for instance
        ``{"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}`` for an
        ``interactive`` reply.
        """
        return await self.send(
            message_callback(
                type,
                payload,
                wa_id=wa_id,
                name=name,
                message_id=message_id,
                context=context,
                shape=self.provider.shape,
                phone_number_id=PHONE_NUMBER_ID if number is None else number,
            ),
            number=self._path_number(number),
        )

    async def status(
        self,
        message_id: str,
        status: str,
        *,
        recipient_id: str = DEFAULT_WA_ID,
        number: str | None = None,
    ) -> list[RecordedCall]:
        """Send a status update of a message the bot sent; return the provider calls made.
        ``number``: see ``text``."""
        return await self.send(
            status_callback(
                message_id,
                status,
                recipient_id=recipient_id,
                shape=self.provider.shape,
                phone_number_id=PHONE_NUMBER_ID if number is None else number,
            ),
            number=self._path_number(number),
        )

    def _path_number(self, number: str | None) -> str | None:
        """The number whose own path a callback is posted to: on-premises only (a Cloud
        callback names its number, and every number posts to ``/webhook``)."""
        return number if self.provider.shape == "onprem" else None

    @property
    def replies(self) -> list[str]:
        """The bodies of every text the bot sent so far."""
        return texts_of(self.provider.sent)

    @property
    def sent(self) -> list[SentMessage]:
        """Every message the bot sent so far, typed (:func:`~whizrouter.testing.sent_messages`)."""
        return sent_messages(self.provider.sent)


def without_waits(policy: RetryPolicy) -> RetryPolicy:
    """``policy`` deciding as before, without waiting (``time_scale=0``)."""
    return replace(policy, time_scale=0.0)


def _without_retry_waits(spec: HandlerSpec) -> HandlerSpec:
    # A handler with its own retry policy keeps its attempts and limits, not its waits.
    return spec if spec.retry is None else replace(spec, retry=without_waits(spec.retry))


def texts_of(calls: list[RecordedCall], *, to: str | None = None) -> list[str]:
    """The text bodies of the send calls among ``calls`` (to ``to`` only, if given)."""
    bodies = []
    for call in calls:
        if call.kind == "send" and call.ok and isinstance(call.json, dict):
            if to is not None and call.json.get("to") != to:
                continue
            text = call.json.get("text")
            if isinstance(text, dict) and isinstance(text.get("body"), str):
                bodies.append(text["body"])
    return bodies


class StartBot(Protocol):
    """The type of the ``bot_tester`` fixture, for annotating tests:
    ``async def test_echo(bot_tester: StartBot) -> None``."""

    async def __call__(
        self,
        app: WhizRouter,
        *,
        provider: FakeProvider | None = None,
        shape: ApiShape | None = None,
        timeout: float = 10.0,
        raise_errors: bool = True,
    ) -> BotTester: ...
