"""The typing indicator: "typing…" shown to a customer while the bot works on their message.

Only the Cloud shape has one (PROVIDER.md §7): the mark-read call of the message with
``"typing_indicator": {"type": "text"}``, so it also marks the message read. WhatsApp shows it
until the bot replies or about 25 s pass. The on-premises API has none: there
:meth:`TypingCalls.send_typing` sends nothing.

:class:`Typing` is what ``ctx.typing()`` returns: ``await`` it to show the indicator once, or
``async with`` it to keep the indicator up (sent again every ``interval`` seconds) while a slow
handler runs. The indicator is cosmetic: a failure to show it is logged and never fails the
handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from whizrouter.backoff import RetryPolicy
from whizrouter.defaults import DEFAULT_TYPING_INTERVAL, ApiShape
from whizrouter.errors import WhizrouterError
from whizrouter.log_throttle import LogThrottle
from whizrouter.outgoing import invalid
from whizrouter.transport import Transport

if TYPE_CHECKING:
    from whizrouter.client import WhizardClient

log = logging.getLogger("whizrouter.client")

#: One quick retry: an indicator that comes late is worth little, and a handler must not wait
#: long for it.
TYPING_RETRY: Final = RetryPolicy(attempts=1, base=0.25, max_delay=1.0, max_total=1.0)

_throttle = LogThrottle()


class TypingCalls:
    """The typing indicator method of :class:`~whizrouter.client.WhizardClient`."""

    _shape: ApiShape
    _transport: Transport

    async def send_typing(self, message_id: str) -> bool:
        """Show "typing…" to the customer who sent ``message_id`` (Cloud shape only).

        On Cloud this also marks the message read. On-premises there is no typing indicator:
        nothing is sent and the result is False.

        Args:
            message_id: the id of the inbound message being answered.

        Returns:
            Whether an indicator was sent.

        Raises:
            MessageValidationError: ``message_id`` is empty.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused, or failed after one quick retry.
        """
        if not isinstance(message_id, str) or not message_id.strip():
            raise invalid(f"the message id to show typing for is empty: {message_id!r}")
        if self._shape != "cloud":
            return False
        body = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
            "typing_indicator": {"type": "text"},
        }
        await self._transport.request("POST", "/messages", body, retry=TYPING_RETRY)
        return True


class Typing:
    """The typing indicator of one message: ``await`` it, or ``async with`` it.

    Made by ``ctx.typing()``. Sends nothing on the on-premises shape, or for an event that is
    not a message.

    Args:
        client: the client to send it with.
        message_id: the message being answered; None sends nothing.
        interval: seconds between two indicators in the ``async with`` form (WhatsApp hides
            one after about 25 s).
    """

    def __init__(
        self,
        client: WhizardClient,
        message_id: str | None,
        interval: float = DEFAULT_TYPING_INTERVAL,
    ) -> None:
        if not interval > 0:
            raise ValueError(
                f"the typing interval must be a positive number of seconds, not {interval}"
            )
        self._client = client
        self._message_id = message_id
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def __await__(self) -> Generator[Any, None, None]:
        return self._show().__await__()

    async def _show(self) -> None:
        if self._message_id is None:
            return
        try:
            await self._client.send_typing(self._message_id)
        except WhizrouterError as exc:
            if _throttle.due():
                held = _throttle.held_back()
                more = f" ({held} more since the last line)" if held else ""
                log.warning("could not show the typing indicator: %s%s", exc, more)

    async def _keep_up(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._show()

    async def __aenter__(self) -> Self:
        await self._show()
        if self._message_id is not None and self._client.shape == "cloud":
            self._task = asyncio.create_task(self._keep_up())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
