"""Interactive messages: reply buttons and lists, the messages a customer answers by a tap.

The methods :meth:`~whizrouter.client.WhizardClient.send_buttons` and
:meth:`~whizrouter.client.WhizardClient.send_list`; their bodies are built and validated by
:mod:`whizrouter.outgoing`, and the customer's choice comes back as an ``interactive`` message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from whizrouter.defaults import ApiShape
from whizrouter.outgoing import buttons_body, list_body
from whizrouter.transport import Transport


class InteractiveSending:
    """The methods that send reply buttons and lists.

    A part of :class:`~whizrouter.client.WhizardClient`, which sets the attributes below.
    Each send also takes ``idempotent=`` and ``idempotency_key=`` (see
    :class:`~whizrouter.sending.MessageSending`).
    """

    _shape: ApiShape
    _transport: Transport
    #: ``/v1/messages`` (on-premises) or ``/messages`` (Cloud).
    _messages_path: str
    #: Posts a message body, through the send journal on a handler's view (``sending``).
    _post: Callable[[dict[str, Any], bool, str | None], Awaitable[str]]

    async def send_buttons(
        self,
        to: str,
        body: str,
        buttons: Iterable[tuple[str, str]] | Mapping[str, str],
        *,
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
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
        return await self._post(message, idempotent, idempotency_key)

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
        idempotent: bool = True,
        idempotency_key: str | None = None,
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
        return await self._post(message, idempotent, idempotency_key)
