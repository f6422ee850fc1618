"""The Whizard provider API client: send messages, mark them read, configure the webhook.

One :class:`WhizardClient` speaks either API shape (PROVIDER.md §3, §4):

* ``onprem`` (the Whizard docs): ``POST {base}/v1/messages``; mark read with
  ``PUT {base}/v1/messages/{id}`` ``{"status": "read"}``;
* ``cloud``: ``POST {base}/messages`` with ``"messaging_product": "whatsapp"``; mark read with
  ``POST {base}/messages`` ``{"messaging_product": "whatsapp", "status": "read", "message_id"}``.

Both read and write the webhook configuration at ``{base}/v1/configs/webhook``.

Messages are checked before they leave (:class:`~whizrouter.errors.MessageValidationError`, and
nothing is sent); every error answer becomes one :class:`~whizrouter.errors.ProviderError` or
:class:`~whizrouter.errors.RateLimited` (see :mod:`whizrouter.client_errors`); transient errors
are retried with the shared :class:`~whizrouter.backoff.RetryPolicy`, honouring ``Retry-After``
(the request itself, key header and retries included, is :mod:`whizrouter.transport`'s).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr

from whizrouter.backoff import CLIENT_RETRY, RetryPolicy
from whizrouter.errors import ConfigurationError, ProviderError
from whizrouter.outgoing import (
    buttons_body,
    contacts_body,
    invalid,
    list_body,
    location_body,
    media_body,
    reaction_body,
    template_body,
    text_body,
)
from whizrouter.transport import API_KEY_ENV, BASE_URL_ENV, KEY_HEADER, Transport

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "KEY_HEADER", "SHAPE_ENV", "ApiShape", "WhizardClient"]

#: The two API shapes the client speaks.
ApiShape = Literal["onprem", "cloud"]
#: Environment variable choosing the API shape (``onprem`` by default).
SHAPE_ENV: Final = "WHIZARD_API_SHAPE"

_SHAPES: Final = ("onprem", "cloud")
_WEBHOOK_PATH: Final = "/v1/configs/webhook"


def _resolve_shape(shape: str | None) -> ApiShape:
    if shape is None:
        value = os.environ.get(SHAPE_ENV, "").strip().lower() or "onprem"
        source = SHAPE_ENV
    else:
        value, source = shape, "shape"
    if value == "onprem":
        return "onprem"
    if value == "cloud":
        return "cloud"
    raise ConfigurationError(
        f"{source} must be one of {', '.join(repr(s) for s in _SHAPES)}, not {value!r}"
    )


class WhizardClient:
    """Async client of the Whizard (360dialog-style) WhatsApp Business API.

    Use it as an async context manager, or call :meth:`close` when done::

        async with WhizardClient() as client:          # key, URL and shape from the environment
            message_id = await client.send_text("4915112345678", "hello")

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

    Raises:
        ConfigurationError: ``shape`` or ``WHIZARD_API_SHAPE`` is neither ``onprem`` nor
            ``cloud``, or ``timeout`` is not a positive number.
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        shape: ApiShape | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV) or None
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        if base_url is None:
            base_url = os.environ.get(BASE_URL_ENV, "").strip() or None
        self._base_url = base_url.rstrip("/") if base_url is not None else None
        self._shape = _resolve_shape(shape)
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, not {timeout!r}"
            )
        self._timeout_seconds = float(timeout)
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

    async def _post_message(self, body: dict[str, Any]) -> str:
        answer = await self._transport.request("POST", self._messages_path, body)
        data = answer.data
        messages = data.get("messages") if isinstance(data, dict) else None
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            message_id = messages[0].get("id")
            if isinstance(message_id, str) and message_id:
                return message_id
        raise ProviderError(
            answer.status,
            "the provider accepted the message but its answer carries no message id",
            raw=data,
        )

    # ------------------------------------------------------------------ sending

    async def send(self, payload: Mapping[str, Any]) -> str:
        """Send a message body as given: the escape hatch for anything the helpers lack.

        Only the envelope keys of the configured shape are filled in when missing
        (``recipient_type``, and ``messaging_product`` on Cloud); nothing is validated.
        Retried after a timeout, a send can deliver the message twice.

        Args:
            payload: the whole message object, e.g.
                ``{"to": "4915112345678", "type": "text", "text": {"body": "hi"}}``.

        Returns:
            The new message's id, which later statuses carry.

        Raises:
            ConfigurationError: the key or base URL is missing.
            RateLimited: the provider kept rate limiting us.
            ProviderError: the provider refused the message, or failed after all retries.
        """
        body = dict(payload)
        if self._shape == "cloud":
            body.setdefault("messaging_product", "whatsapp")
        body.setdefault("recipient_type", "individual")
        return await self._post_message(body)

    async def send_text(
        self, to: str, body: str, *, preview_url: bool = False, reply_to: str | None = None
    ) -> str:
        """Send a text message.

        Retried after a timeout, a send can deliver the message twice.

        Args:
            to: the recipient's WhatsApp id (digits, as in the callback's ``wa_id``).
            body: the text, 1 to 4096 characters.
            preview_url: ask WhatsApp to render a preview of the first URL in ``body``.
            reply_to: quote this message id (Cloud only; ignored by the on-premises API).

        Returns:
            The new message's id.

        Raises:
            MessageValidationError: ``to`` or ``body`` is empty, or ``body`` is too long.
            ConfigurationError: the key or base URL is missing.
            RateLimited: the provider kept rate limiting us.
            ProviderError: the provider refused the message, or failed after all retries.
        """
        message = text_body(self._shape, to, body, preview_url=preview_url, reply_to=reply_to)
        return await self._post_message(message)

    async def send_image(
        self,
        to: str,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send an image by media ``id`` or ``link`` (exactly one), with an optional caption.

        Arguments, result and errors as in :meth:`send_document` (without ``filename``).
        Retried after a timeout, a send can deliver the message twice.
        """
        message = media_body(self._shape, "image", to, id, link, caption, None, reply_to)
        return await self._post_message(message)

    async def send_video(
        self,
        to: str,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send a video by media ``id`` or ``link`` (exactly one), with an optional caption.

        Arguments, result and errors as in :meth:`send_document` (without ``filename``).
        Retried after a timeout, a send can deliver the message twice.
        """
        message = media_body(self._shape, "video", to, id, link, caption, None, reply_to)
        return await self._post_message(message)

    async def send_audio(
        self,
        to: str,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send an audio file by media ``id`` or ``link`` (exactly one).

        Audio cannot carry a caption: passing one raises ``MessageValidationError``. Arguments,
        result and errors otherwise as in :meth:`send_document`. Retried after a timeout, a send
        can deliver the message twice.
        """
        message = media_body(self._shape, "audio", to, id, link, caption, None, reply_to)
        return await self._post_message(message)

    async def send_document(
        self,
        to: str,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send a document, by uploaded media ``id`` or by ``link`` (exactly one).

        Retried after a timeout, a send can deliver the message twice.

        Args:
            to: the recipient's WhatsApp id.
            id: a media id from the provider's media upload.
            link: a public https URL the provider downloads.
            caption: text shown with the document, up to 1024 characters.
            filename: the file name the recipient sees.
            reply_to: quote this message id (Cloud only; ignored by the on-premises API).

        Returns:
            The new message's id.

        Raises:
            MessageValidationError: both or neither of ``id``/``link``, or an empty field.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused the message, or failed after all retries.
        """
        message = media_body(self._shape, "document", to, id, link, caption, filename, reply_to)
        return await self._post_message(message)

    async def send_sticker(
        self,
        to: str,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send a sticker (a webp image) by media ``id`` or ``link`` (exactly one).

        Stickers cannot carry a caption: passing one raises ``MessageValidationError``.
        Arguments, result and errors otherwise as in :meth:`send_document`. Retried after a
        timeout, a send can deliver the message twice.
        """
        message = media_body(self._shape, "sticker", to, id, link, caption, None, reply_to)
        return await self._post_message(message)

    async def send_location(
        self,
        to: str,
        latitude: float,
        longitude: float,
        *,
        name: str | None = None,
        address: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send a location pin.

        Retried after a timeout, a send can deliver the message twice.

        Args:
            to: the recipient's WhatsApp id.
            latitude: degrees, -90 to 90.
            longitude: degrees, -180 to 180.
            name: the place's name.
            address: the place's address.
            reply_to: quote this message id (Cloud only; ignored by the on-premises API).

        Returns:
            The new message's id.

        Raises:
            MessageValidationError: a coordinate is out of range, or ``to`` is empty.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused the message, or failed after all retries.
        """
        message = location_body(
            self._shape, to, latitude, longitude, name=name, address=address, reply_to=reply_to
        )
        return await self._post_message(message)

    async def send_contacts(
        self, to: str, contacts: Iterable[Mapping[str, Any]], *, reply_to: str | None = None
    ) -> str:
        """Send one or more contact cards.

        Retried after a timeout, a send can deliver the message twice.

        Args:
            to: the recipient's WhatsApp id.
            contacts: contact objects as the API defines them, e.g.
                ``{"name": {"formatted_name": "Ana", "first_name": "Ana"},
                "phones": [{"phone": "+15551230001", "type": "CELL"}]}``.
            reply_to: quote this message id (Cloud only; ignored by the on-premises API).

        Returns:
            The new message's id.

        Raises:
            MessageValidationError: ``contacts`` is empty or holds something else than objects.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused the message, or failed after all retries.
        """
        message = contacts_body(self._shape, to, contacts, reply_to=reply_to)
        return await self._post_message(message)

    async def send_template(
        self,
        to: str,
        *,
        name: str,
        language: str,
        components: Iterable[Mapping[str, Any]] | None = None,
        namespace: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send an approved template message (the only kind allowed outside the 24-hour window).

        On-premises bodies carry ``namespace`` and ``language: {"policy": "deterministic",
        "code"}``; Cloud bodies carry neither ``namespace`` nor ``policy``.
        Retried after a timeout, a send can deliver the message twice.

        Args:
            to: the recipient's WhatsApp id.
            name: the template's name.
            language: its language code, such as ``"en"`` or ``"de"``.
            components: the parameters, e.g. ``[{"type": "body", "parameters": [{"type":
                "text", "text": "42"}]}]``.
            namespace: the template namespace (on-premises; ignored by Cloud).
            reply_to: quote this message id (Cloud only; ignored by the on-premises API).

        Returns:
            The new message's id.

        Raises:
            MessageValidationError: ``name`` or ``language`` is empty.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused the message (a 2000-series code or 132xxx for
                template errors), or failed after all retries.
        """
        message = template_body(
            self._shape,
            to,
            name=name,
            language=language,
            components=components,
            namespace=namespace,
            reply_to=reply_to,
        )
        return await self._post_message(message)

    async def send_buttons(
        self,
        to: str,
        body: str,
        buttons: Iterable[tuple[str, str]] | Mapping[str, str],
        *,
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send a message with up to three reply buttons.

        The customer's tap arrives as an ``interactive`` message with ``button_reply`` carrying
        the button's id. Retried after a timeout, a send can deliver the message twice.

        Args:
            to: the recipient's WhatsApp id.
            body: the message text, up to 1024 characters.
            buttons: 1 to 3 ``(id, title)`` pairs; ids unique, titles up to 20 characters.
            header: a text header, up to 60 characters.
            footer: a footer, up to 60 characters.
            reply_to: quote this message id (Cloud only; ignored by the on-premises API).

        Returns:
            The new message's id.

        Raises:
            MessageValidationError: no or too many buttons, a duplicate id, a title too long.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused the message, or failed after all retries.
        """
        message = buttons_body(
            self._shape, to, body, buttons, header=header, footer=footer, reply_to=reply_to
        )
        return await self._post_message(message)

    async def send_list(
        self,
        to: str,
        body: str,
        *,
        button: str,
        sections: Iterable[Mapping[str, Any]],
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send a list message: a button that opens sections of selectable rows.

        The customer's choice arrives as an ``interactive`` message with ``list_reply`` carrying
        the row's id. Retried after a timeout, a send can deliver the message twice.

        Args:
            to: the recipient's WhatsApp id.
            body: the message text, up to 1024 characters.
            button: the label of the button that opens the list, up to 20 characters.
            sections: ``{"title": ..., "rows": [{"id", "title", "description"?}]}`` objects;
                at most 10 rows in all, row ids unique, row titles up to 24 characters,
                descriptions up to 72; a title is required once there are several sections.
            header: a text header, up to 60 characters.
            footer: a footer, up to 60 characters.
            reply_to: quote this message id (Cloud only; ignored by the on-premises API).

        Returns:
            The new message's id.

        Raises:
            MessageValidationError: no sections or rows, more than 10 rows, a label or title
                too long, a duplicate row id.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused the message, or failed after all retries.
        """
        message = list_body(
            self._shape,
            to,
            body,
            button=button,
            sections=sections,
            header=header,
            footer=footer,
            reply_to=reply_to,
        )
        return await self._post_message(message)

    async def send_reaction(self, to: str, message_id: str, emoji: str) -> str:
        """React to a message with an emoji; an empty ``emoji`` removes the reaction.

        Args:
            to: the WhatsApp id of the chat the message belongs to.
            message_id: the message to react to.
            emoji: one emoji, or ``""`` to remove our reaction.

        Returns:
            The id of the reaction message.

        Raises:
            MessageValidationError: ``to`` or ``message_id`` is empty.
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused the reaction, or failed after all retries.
        """
        message = reaction_body(self._shape, to, message_id, emoji)
        return await self._post_message(message)

    # ------------------------------------------------------------------ other calls

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

    async def get_webhook(self) -> dict[str, Any]:
        """Read the webhook configuration: ``{"url": ..., "headers": {...}}`` as stored.

        Returns:
            The provider's answer as a dict (empty when it sent no body).

        Raises:
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused, or failed after all retries.
        """
        answer = await self._transport.request("GET", _WEBHOOK_PATH)
        if answer.data is None:
            return {}
        if not isinstance(answer.data, dict):
            raise ProviderError(
                answer.status, "the webhook configuration is not a JSON object", raw=answer.data
            )
        return answer.data

    async def set_webhook(self, url: str, headers: dict[str, str] | None = None) -> None:
        """Register the URL the provider posts callbacks to.

        Args:
            url: the public https URL of the webhook.
            headers: static headers the provider sends with every callback (such as
                ``{"Authorization": "Basic ..."}``); left out of the request when ``None``.

        Raises:
            ConfigurationError: ``url`` is empty, or the key or base URL is missing.
            ProviderError: the provider refused the URL, or failed after all retries.
        """
        if not url or not url.strip():
            raise ConfigurationError("set_webhook needs a non-empty url")
        body: dict[str, Any] = {"url": url}
        if headers is not None:
            body["headers"] = dict(headers)
        # A provider may echo the request in its error: the header values are credentials.
        secrets = [part for value in (headers or {}).values() for part in _credential_forms(value)]
        await self._transport.request("POST", _WEBHOOK_PATH, body, secrets=secrets)


def _credential_forms(header_value: str) -> list[str]:
    """A header value and, for Basic auth, its token, ``user:password`` and the password."""
    forms = [header_value]
    scheme, _, token = header_value.partition(" ")
    if token:
        forms.append(token.strip())
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(token.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                pair = ""
            if pair:
                forms.append(pair)
                password = pair.partition(":")[2]
                if len(password) >= 4:  # a one-letter password would scrub every "a"
                    forms.append(password)
    return forms
