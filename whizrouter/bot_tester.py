"""``BotTester``: drive a whole bot over real HTTP against a fake provider.

It serves the app on a loopback test server, points its client at a ``FakeProvider``, swaps
its inbox for a memory one and every retry delay (the app's and each handler's own) for a
tiny one, posts callbacks to ``/webhook`` like the provider does, and waits until the
handlers have settled every event and the plugins have flushed what they deferred::

    async def test_echo(bot_tester):
        bot = await bot_tester(app)
        assert await bot.text("hi") == ["echo: hi"]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import aiohttp
import anyio
import orjson
from aiohttp.test_utils import TestServer

from whizrouter.app import WhizRouter
from whizrouter.backoff import RetryPolicy
from whizrouter.errors import WhizrouterError
from whizrouter.inbox.base import DeadLetter
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.plugins import call_hook
from whizrouter.testing import DEFAULT_WA_ID, FakeProvider, RecordedCall, status_callback
from whizrouter.testing import text_callback as build_text_callback
from whizrouter.wire import Shape


class BotTester:
    """A bot under test: its webhook on a loopback server, its provider a ``FakeProvider``.

    Args:
        app: the bot, not running (the same app may be tested again once this one closed).
        provider: the fake provider to use; by default one is started and closed here.
        shape: the API shape of the provider started here, ``"onprem"`` or ``"cloud"``
            (default: the app's); callbacks are then built in that shape too.
        timeout: seconds to wait for the handlers to settle a callback.
    """

    def __init__(
        self,
        app: WhizRouter,
        *,
        provider: FakeProvider | None = None,
        shape: Shape | None = None,
        timeout: float = 10.0,
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
        self._server: TestServer | None = None
        self._session: aiohttp.ClientSession | None = None

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
        # Test wiring, set before start: the fake provider, a throwaway inbox, quick retries
        # (the handlers' own policies too: a test keeps their attempts, not their waits).
        app.replace_parts(client=self.provider.client(), inbox=MemoryInbox())
        app.retry = quick_retries(app.retry)
        app.router.change_retry_policies(quick_retries)
        self._server = TestServer(app.make_web_app())
        await self._server.start_server()
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        """Stop the bot (draining it) and the provider."""
        if self._session is not None:
            await self._session.close()
        if self._server is not None:
            await self._server.close()
        if self._owns_provider:
            await self.provider.close()

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

    async def post(self, body: dict[str, Any] | bytes) -> int:
        """POST a callback body to the bot's webhook as the provider would; return the status."""
        assert self._server is not None and self._session is not None, "start() first"
        headers = {"Content-Type": "application/json"}
        if self.app.settings.auth_header:
            headers["Authorization"] = self.app.settings.auth_header
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        async with self._session.post(
            self._server.make_url("/webhook"), data=data, headers=headers
        ) as response:
            return response.status

    async def send(self, body: dict[str, Any] | bytes) -> list[RecordedCall]:
        """Post a callback, expect 200, wait for its handlers; return the provider calls made.

        Raises:
            AssertionError: the webhook did not answer 200, or the handlers did not settle
                within ``timeout``.
        """
        before = len(self.provider.calls)
        status = await self.post(body)
        assert status == 200, f"the webhook answered {status}, not 200"
        await self.settled()
        return self.provider.calls[before:]

    async def settled(self) -> None:
        """Wait until every stored event has been settled by the handlers, then have the
        plugins do what they deferred (their ``flush`` hook: mark-read's coalesced marks)."""
        dispatcher = self.app.dispatcher
        assert dispatcher is not None, "the bot has no dispatcher (receiver role?)"
        with anyio.fail_after(self.timeout):
            await dispatcher.wait_idle()
            await call_hook(self.app.plugins, "flush", self.app)

    async def dead_letters(self) -> list[DeadLetter]:
        """The events whose handler kept failing (or could not run), oldest first."""
        return await self.app.inbox.dead_letters()

    async def text(
        self,
        text: str,
        *,
        wa_id: str = DEFAULT_WA_ID,
        name: str = "Test User",
        message_id: str | None = None,
    ) -> list[str]:
        """Send a text message from ``wa_id``; return the bodies of the texts the bot sent."""
        calls = await self.send(
            build_text_callback(
                text, wa_id=wa_id, name=name, message_id=message_id, shape=self.provider.shape
            )
        )
        return texts_of(calls)

    async def status(
        self, message_id: str, status: str, *, recipient_id: str = DEFAULT_WA_ID
    ) -> list[RecordedCall]:
        """Send a status update of a message the bot sent; return the provider calls made."""
        return await self.send(
            status_callback(
                message_id, status, recipient_id=recipient_id, shape=self.provider.shape
            )
        )

    @property
    def replies(self) -> list[str]:
        """The bodies of every text the bot sent so far."""
        return texts_of(self.provider.sent)


def quick_retries(policy: RetryPolicy) -> RetryPolicy:
    """``policy`` with its number of retries and delays of a millisecond."""
    return RetryPolicy(
        attempts=policy.attempts, base=0.001, factor=1.0, max_delay=0.001, max_total=1.0,
        jitter=False,
    )  # fmt: skip


def texts_of(calls: list[RecordedCall]) -> list[str]:
    """The text bodies of the send calls among ``calls``."""
    bodies = []
    for call in calls:
        if call.kind == "send" and call.ok and isinstance(call.json, dict):
            text = call.json.get("text")
            if isinstance(text, dict) and isinstance(text.get("body"), str):
                bodies.append(text["body"])
    return bodies


#: The type of the ``bot_tester`` fixture, for annotating tests:
#: ``async def test_echo(bot_tester: StartBot) -> None``.
StartBot = Callable[..., Awaitable[BotTester]]
