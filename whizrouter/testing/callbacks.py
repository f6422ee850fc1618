"""Callback builders: webhook bodies of either API shape, as the provider would post them.

:func:`text_callback`, :func:`media_callback`, :func:`status_callback` and
:func:`message_callback` build the body of one inbound message or one status, flat for the
on-premises API or wrapped in the Cloud envelope (``whatsapp_business_account`` with the test
business number and ids below), each with a fresh message id (:func:`fresh_message_id`) and
the current time, to feed a bot under test. Import them from :mod:`whizrouter.testing`.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from whizrouter.defaults import DEFAULT_TEST_WA_ID, ApiShape

#: The customer WhatsApp id the builders use by default.
DEFAULT_WA_ID: Final = DEFAULT_TEST_WA_ID
#: The business number and ids the Cloud envelope carries.
BUSINESS_NUMBER: Final = "15550009999"
PHONE_NUMBER_ID: Final = "109876543210987"
WABA_ID: Final = "102938475610293"


def fresh_message_id() -> str:
    """A new, globally unique inbound message id such as ``wamid.TEST3F2A…``."""
    return "wamid.TEST" + uuid.uuid4().hex.upper()


def _now() -> str:
    return str(int(time.time()))


def _cloud_envelope(value: dict[str, Any], phone_number_id: str) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": BUSINESS_NUMBER,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def message_callback(
    type: str,
    payload: Mapping[str, Any] | None,
    *,
    wa_id: str = DEFAULT_WA_ID,
    name: str | None = "Test User",
    message_id: str | None = None,
    shape: ApiShape = "onprem",
    timestamp: str | None = None,
    context: Mapping[str, Any] | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A webhook body carrying one inbound message of any type.

    Args:
        type: the message type, such as ``"image"`` or ``"interactive"``.
        payload: the object stored under the ``type`` key (``None`` for none, as for
            ``unknown``).
        wa_id: the sender's WhatsApp id.
        name: the sender's profile name; ``None`` leaves out the ``contacts`` array (as system
            messages do).
        message_id: the message id; a fresh one by default.
        shape: ``"onprem"`` for the flat body, ``"cloud"`` for the Cloud envelope.
        timestamp: Unix seconds as a string; now by default.
        context: the message's ``context`` (a quoted reply: ``{"from", "id"}``).
        phone_number_id: Cloud only, the receiving number (``metadata.phone_number_id``);
            on-premises, post to the number's own path instead (``BotTester(number=...)``).

    Returns:
        The callback body, ready to POST to the webhook.
    """
    message: dict[str, Any] = {
        "from": wa_id,
        "id": message_id if message_id is not None else fresh_message_id(),
        "timestamp": timestamp if timestamp is not None else _now(),
        "type": type,
    }
    if payload is not None:
        message[type] = dict(payload)
    if context is not None:
        message["context"] = dict(context)
    value: dict[str, Any] = {}
    if name is not None:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
    value["messages"] = [message]
    return _cloud_envelope(value, phone_number_id) if shape == "cloud" else value


def text_callback(
    text: str,
    *,
    wa_id: str = DEFAULT_WA_ID,
    name: str = "Test User",
    message_id: str | None = None,
    shape: ApiShape = "onprem",
    timestamp: str | None = None,
    context: Mapping[str, Any] | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A webhook body carrying one inbound text message.

    Args:
        text: the message text.
        wa_id: the sender's WhatsApp id.
        name: the sender's profile name.
        message_id: the message id; a fresh one by default.
        shape: ``"onprem"`` for the flat body, ``"cloud"`` for the Cloud envelope.
        timestamp: Unix seconds as a string; now by default.
        context: the message's ``context`` (a quoted reply: ``{"from", "id"}``).
        phone_number_id: Cloud only, the receiving number (``metadata.phone_number_id``).

    Returns:
        The callback body, ready to POST to the webhook.
    """
    return message_callback(
        "text",
        {"body": text},
        wa_id=wa_id,
        name=name,
        message_id=message_id,
        shape=shape,
        timestamp=timestamp,
        context=context,
        phone_number_id=phone_number_id,
    )


def status_callback(
    message_id: str,
    status: str,
    *,
    recipient_id: str = DEFAULT_WA_ID,
    shape: ApiShape = "onprem",
    timestamp: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A webhook body carrying one status of a message the business sent.

    Args:
        message_id: the id of our message (as a send returned it).
        status: ``sent``, ``delivered``, ``read``, ``failed``, ``deleted``, ``played`` ...
        recipient_id: the customer's WhatsApp id.
        shape: ``"onprem"`` for the flat body, ``"cloud"`` for the Cloud envelope.
        timestamp: Unix seconds as a string; now by default.
        errors: the status's ``errors``; a ``failed`` status gets the 24-hour-window error
            of its shape (470 on-premises, 131047 on Cloud) unless given.
        phone_number_id: Cloud only, the sending number (``metadata.phone_number_id``).

    Returns:
        The callback body, ready to POST to the webhook.
    """
    item: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "timestamp": timestamp if timestamp is not None else _now(),
        "recipient_id": recipient_id,
    }
    if errors is None and status == "failed":
        if shape == "cloud":
            errors = [
                {
                    "code": 131047,
                    "title": "Re-engagement message",
                    "message": "Re-engagement message",
                    "error_data": {
                        "details": "More than 24 hours have passed since the "
                        "recipient last replied to the sender number."
                    },
                }
            ]
        else:
            errors = [
                {
                    "code": 470,
                    "title": "Message failed to send because more than 24 hours have passed "
                    "since the customer last replied to this number",
                }
            ]
    if errors is not None:
        item["errors"] = [dict(error) for error in errors]
    value: dict[str, Any] = {"statuses": [item]}
    return _cloud_envelope(value, phone_number_id) if shape == "cloud" else value


def media_callback(
    kind: str,
    media_id: str,
    *,
    mime_type: str | None = None,
    data: bytes | None = None,
    sha256: str | None = None,
    caption: str | None = None,
    filename: str | None = None,
    wa_id: str = DEFAULT_WA_ID,
    name: str = "Test User",
    message_id: str | None = None,
    shape: ApiShape = "onprem",
    timestamp: str | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A webhook body carrying one inbound media message.

    Hold the file at the fake provider first, so the bot can download it::

        media_id = bot.provider.add_media(data, "audio/ogg")
        await bot.send(media_callback("voice", media_id, data=data, mime_type="audio/ogg"))

    Args:
        kind: ``"image"``, ``"video"``, ``"audio"``, ``"voice"``, ``"document"`` or
            ``"sticker"``. A voice note is ``type: voice`` on-premises and an ``audio`` with
            ``voice: true`` on Cloud, as the provider sends them.
        media_id: the media id (from :meth:`FakeProvider.add_media`).
        mime_type: the MIME type the message states.
        data: the file's bytes, to state its sha256 (base64, as WhatsApp writes it).
        sha256: the sha256 to state instead.
        caption: image, video and document captions.
        filename: documents only.
        wa_id: the sender's WhatsApp id.
        name: the sender's profile name.
        message_id: the message id; a fresh one by default.
        shape: ``"onprem"`` for the flat body, ``"cloud"`` for the Cloud envelope.
        timestamp: Unix seconds as a string; now by default.
        phone_number_id: Cloud only, the receiving number (``metadata.phone_number_id``).

    Returns:
        The callback body, ready to POST to the webhook.
    """
    if kind not in ("image", "video", "audio", "voice", "document", "sticker"):
        raise ValueError(
            f"unknown media kind {kind!r}: use image, video, audio, voice, document or sticker"
        )
    media: dict[str, Any] = {"id": media_id}
    if mime_type is not None:
        media["mime_type"] = mime_type
    if sha256 is None and data is not None:
        sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    if sha256 is not None:
        media["sha256"] = sha256
    if caption is not None:
        media["caption"] = caption
    if filename is not None:
        media["filename"] = filename
    if kind == "voice" and shape == "cloud":
        kind, media["voice"] = "audio", True
    return message_callback(
        kind,
        media,
        wa_id=wa_id,
        name=name,
        message_id=message_id,
        shape=shape,
        timestamp=timestamp,
        phone_number_id=phone_number_id,
    )
