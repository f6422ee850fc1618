"""The Whizard provider API client: send messages, mark them read, configure the webhook.

One :class:`WhizardClient` speaks either API shape (PROVIDER.md §3, §4):

* ``onprem`` (the Whizard docs): ``POST {base}/v1/messages``; mark read with
  ``PUT {base}/v1/messages/{id}`` ``{"status": "read"}``;
* ``cloud``: ``POST {base}/messages`` with ``"messaging_product": "whatsapp"``; mark read with
  ``POST {base}/messages`` ``{"messaging_product": "whatsapp", "status": "read", "message_id"}``.

Both read and write the webhook configuration at ``{base}/v1/configs/webhook``.

The client is composed of one part per concept: sending messages (:mod:`whizrouter.sending`,
:mod:`whizrouter.interactive`, with the bodies built and checked by :mod:`whizrouter.outgoing`),
the webhook configuration (:mod:`whizrouter.webhook_config`), and the request itself, key
header and retries included (:mod:`whizrouter.transport`, with the error answers parsed by
:mod:`whizrouter.client_errors`). This module builds it from its arguments or the environment
(:class:`~whizrouter.settings.ClientSettings`) and owns its lifecycle and ``mark_read``.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Self
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr

from whizrouter.backoff import CLIENT_RETRY, RetryPolicy
from whizrouter.defaults import DEFAULT_CLIENT_TIMEOUT, DEFAULT_MAX_MEDIA_BYTES, ApiShape
from whizrouter.errors import ConfigurationError
from whizrouter.interactive import InteractiveSending
from whizrouter.media_client import MediaCalls
from whizrouter.outgoing import invalid
from whizrouter.sending import MessageSending
from whizrouter.settings import API_KEY_ENV, BASE_URL_ENV, SHAPE_ENV, ClientSettings
from whizrouter.tallies import ProviderCalls
from whizrouter.transport import KEY_HEADER, Transport
from whizrouter.typing_indicator import TypingCalls
from whizrouter.webhook_config import WebhookConfig

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "KEY_HEADER", "SHAPE_ENV", "WhizardClient"]


class WhizardClient(MessageSending, InteractiveSending, MediaCalls, TypingCalls, WebhookConfig):
    """Async client of the Whizard (360dialog-style) WhatsApp Business API.

    Use it as an async context manager, or call :meth:`close` when done::

        async with WhizardClient() as client:          # key, URL and shape from the environment
            message_id = await client.send_text("4915112345678", "hello")

    Its methods come in parts, one module each: the sends
    (:class:`~whizrouter.sending.MessageSending`,
    :class:`~whizrouter.interactive.InteractiveSending`), the webhook configuration
    (:class:`~whizrouter.webhook_config.WebhookConfig`), media downloads and uploads
    (:class:`~whizrouter.media_client.MediaCalls`), the typing indicator
    (:class:`~whizrouter.typing_indicator.TypingCalls`), and ``mark_read`` here.

    A client without a key or base URL can be built (a bot must start without them); the first
    API call then raises :class:`~whizrouter.errors.ConfigurationError` naming the variable to
    set. The key is kept as a :class:`pydantic.SecretStr` and never appears in ``repr``, in
    exception messages or in log lines.

    Transient errors (429, 5xx, 555, timeouts, connection errors, provider rate limits, also
    those sent as a 400) are retried with ``retry`` and a ``Retry-After`` is honoured: when the
    provider asks for a longer wait than the policy's ``max_delay``, the client gives up at once
    and raises :class:`~whizrouter.errors.RateLimited` carrying that ``retry_after``. Because a
    timed-out request may still have reached the provider, a send retried after a timeout can
    deliver the message twice; pass ``retry=RetryPolicy(attempts=0)`` where that is worse than
    a lost message.

    Args:
        api_key: the provider key, sent as the ``WHIZARD-KEY`` header; default
            ``WHIZARD_API_KEY``.
        base_url: the API base URL, such as ``https://waba.example.com``; default
            ``WHIZARD_BASE_URL``.
        shape: ``"onprem"`` or ``"cloud"``; default ``WHIZARD_API_SHAPE``, else ``"onprem"``.
        timeout: seconds allowed for each HTTP request (each retry gets its own).
        retry: the retry policy; default :data:`whizrouter.backoff.CLIENT_RETRY`.
        session: an aiohttp session to use; the client never closes a session it was given.
            Without one, the client creates its own on the first call and closes it in
            :meth:`close`.
        max_media_bytes: the default cap of a media download, in bytes (100 MB); a download
            that passes it stops with :class:`~whizrouter.errors.MediaTooLargeError`.

    Raises:
        ConfigurationError: ``shape`` or ``WHIZARD_API_SHAPE`` is neither ``onprem`` nor
            ``cloud``, or ``timeout`` or ``max_media_bytes`` is not a positive number.
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        shape: ApiShape | None = None,
        *,
        timeout: float = DEFAULT_CLIENT_TIMEOUT,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES,
    ) -> None:
        configured = ClientSettings.resolve(api_key, base_url, shape)
        self._api_key = configured.api_key
        self._base_url = configured.base_url
        self._shape = configured.shape
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, not {timeout!r}"
            )
        self._timeout_seconds = float(timeout)
        if isinstance(max_media_bytes, bool) or not (
            isinstance(max_media_bytes, int) and max_media_bytes > 0
        ):
            raise ConfigurationError(
                f"max_media_bytes must be a positive number of bytes, not {max_media_bytes!r}"
            )
        self._max_media_bytes = max_media_bytes
        self._messages_path = "/v1/messages" if self._shape == "onprem" else "/messages"
        self._transport = Transport(
            self._api_key,
            self._base_url,
            timeout=self._timeout_seconds,
            retry=retry if retry is not None else CLIENT_RETRY,
            session=session,
        )

    @property
    def shape(self) -> ApiShape:
        """The API shape this client speaks: ``"onprem"`` or ``"cloud"``."""
        return self._shape

    @property
    def base_url(self) -> str | None:
        """The API base URL without a trailing slash, or ``None`` when none is configured."""
        return self._base_url

    @property
    def calls(self) -> ProviderCalls:
        """This client's requests by endpoint and answer, and their times (for metrics)."""
        return self._transport.calls

    def __repr__(self) -> str:
        key = "'**********'" if self._api_key is not None else "None"
        return (
            f"WhizardClient(base_url={self._base_url!r}, shape={self._shape!r}, api_key={key}, "
            f"timeout={self._timeout_seconds!r})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session the client created; a session passed in is left open.

        The client stays usable: a later call opens a new session.
        """
        await self._transport.close()

    async def mark_read(self, message_id: str) -> None:
        """Mark a message the customer sent as read (blue ticks).

        On Cloud this also marks the earlier messages of that chat read.

        Args:
            message_id: the id of an inbound message.

        Raises:
            MessageValidationError: ``message_id`` is empty.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused (an unknown id is not retried), or failed after
                all retries.
        """
        if not isinstance(message_id, str) or not message_id.strip():
            raise invalid(f"the message id to mark read is empty or not a string: {message_id!r}")
        if self._shape == "cloud":
            body = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
            await self._transport.request("POST", "/messages", body)
        else:
            path = "/v1/messages/" + quote(message_id, safe="")
            await self._transport.request("PUT", path, {"status": "read"})
