"""Sending messages: the ``send_*`` methods of :class:`~whizrouter.client.WhizardClient`.

Each method builds its body with :mod:`whizrouter.outgoing` (which validates it, so an invalid
message raises :class:`~whizrouter.errors.MessageValidationError` and nothing is sent), posts
it to the messages endpoint of the client's API shape (:func:`post_message`, the one place a
sent message's id is read from the answer) and returns the new message's id. The
interactive messages (buttons, lists) are :mod:`whizrouter.interactive`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self

from whizrouter.defaults import ApiShape
from whizrouter.errors import ProviderError
from whizrouter.outgoing import (
    contacts_body,
    location_body,
    media_body,
    reaction_body,
    template_body,
    text_body,
)
from whizrouter.transport import Transport

if TYPE_CHECKING:
    from whizrouter.send_journal import SendJournal


async def post_message(transport: Transport, path: str, body: dict[str, Any]) -> str:
    """POST a message body to ``path``; the new message's id, which later statuses carry.

    Raises:
        ProviderError: the provider refused, failed after all retries, or accepted the
            message without saying its id.
    """
    answer = await transport.request("POST", path, body)
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


class MessageSending:
    """The methods that send text, media, locations, contacts, templates and reactions.

    A part of :class:`~whizrouter.client.WhizardClient`, which sets the attributes below.

    Every send also takes two keywords, used only by a handler's ``ctx.client`` (see
    ``docs/exactly-one-reply.md``): ``idempotent=False`` sends it
    on every run, outside the send journal; ``idempotency_key=`` names the send in the
    journal instead of its ordinal within the run, so that a handler sending a varying
    number of messages still finds each one's earlier send.
    """

    _shape: ApiShape
    _transport: Transport
    #: ``/v1/messages`` (on-premises) or ``/messages`` (Cloud).
    _messages_path: str
    #: The journal of the event a handler's view of the client sends for; None elsewhere.
    _journal: SendJournal | None = None

    def with_send_journal(self, journal: SendJournal) -> Self:
        """A view of this client whose sends go through ``journal``: the context's client.

        It shares this client's connection, key and settings; ``mark_read`` and the webhook
        calls are not journaled (they are idempotent).
        """
        # What copy.copy does, without its generic protocol: a fifth of its cost, for every
        # event that sends.
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._journal = journal
        return view

    async def _post(
        self, body: dict[str, Any], idempotent: bool, idempotency_key: str | None
    ) -> str:
        """Post a message body, through the journal when this is a handler's view."""
        journal = self._journal
        if journal is None or not idempotent:
            return await post_message(self._transport, self._messages_path, body)
        transport, path = self._transport, self._messages_path
        return await journal.send(
            path, body, lambda: post_message(transport, path, body), idempotency_key
        )

    async def send(
        self,
        payload: Mapping[str, Any],
        *,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
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
        return await self._post(body, idempotent, idempotency_key)

    async def send_text(
        self,
        to: str,
        body: str,
        *,
        preview_url: bool = False,
        reply_to: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
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
        return await self._post(message, idempotent, idempotency_key)

    async def send_image(
        self,
        to: str,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        reply_to: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send an image by media ``id`` or ``link`` (exactly one), with an optional caption.

        Arguments, result and errors as in :meth:`send_document` (without ``filename``).
        Retried after a timeout, a send can deliver the message twice.
        """
        message = media_body(self._shape, "image", to, id, link, caption, None, reply_to)
        return await self._post(message, idempotent, idempotency_key)

    async def send_video(
        self,
        to: str,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        reply_to: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send a video by media ``id`` or ``link`` (exactly one), with an optional caption.

        Arguments, result and errors as in :meth:`send_document` (without ``filename``).
        Retried after a timeout, a send can deliver the message twice.
        """
        message = media_body(self._shape, "video", to, id, link, caption, None, reply_to)
        return await self._post(message, idempotent, idempotency_key)

    async def send_audio(
        self,
        to: str,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        reply_to: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send an audio file by media ``id`` or ``link`` (exactly one).

        Audio cannot carry a caption: passing one raises ``MessageValidationError``. Arguments,
        result and errors otherwise as in :meth:`send_document`. Retried after a timeout, a send
        can deliver the message twice.
        """
        message = media_body(self._shape, "audio", to, id, link, caption, None, reply_to)
        return await self._post(message, idempotent, idempotency_key)

    async def send_document(
        self,
        to: str,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        reply_to: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
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
        return await self._post(message, idempotent, idempotency_key)

    async def send_sticker(
        self,
        to: str,
        *,
        id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        reply_to: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
        """Send a sticker (a webp image) by media ``id`` or ``link`` (exactly one).

        Stickers cannot carry a caption: passing one raises ``MessageValidationError``.
        Arguments, result and errors otherwise as in :meth:`send_document`. Retried after a
        timeout, a send can deliver the message twice.
        """
        message = media_body(self._shape, "sticker", to, id, link, caption, None, reply_to)
        return await self._post(message, idempotent, idempotency_key)

    async def send_location(
        self,
        to: str,
        latitude: float,
        longitude: float,
        *,
        name: str | None = None,
        address: str | None = None,
        reply_to: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
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
        return await self._post(message, idempotent, idempotency_key)

    async def send_contacts(
        self,
        to: str,
        contacts: Iterable[Mapping[str, Any]],
        *,
        reply_to: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
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
        return await self._post(message, idempotent, idempotency_key)

    async def send_template(
        self,
        to: str,
        *,
        name: str,
        language: str,
        components: Iterable[Mapping[str, Any]] | None = None,
        namespace: str | None = None,
        reply_to: str | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
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
        return await self._post(message, idempotent, idempotency_key)

    async def send_reaction(
        self,
        to: str,
        message_id: str,
        emoji: str,
        *,
        idempotent: bool = True,
        idempotency_key: str | None = None,
    ) -> str:
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
        return await self._post(message, idempotent, idempotency_key)
