"""Typed events: one pydantic model per message type, ``UnknownMessage`` and ``Status``.

Import every event class from here (or the common ones from ``whizrouter``); the modules of
this package each hold one family:

- ``wire``: ``WireModel``, the base of every model, and the parts messages and statuses share
  (the sender's ``Contact``, our ``BusinessNumber``, ``ProviderErrorInfo``);
- ``message``: the ``Message`` base class and what any message may carry (reply context, ad
  referral, identity); ``media``: the ``Media`` object;
- one module per family of messages: ``text``, ``media_messages``, ``location``,
  ``contact_cards``, ``interactive`` (with template buttons), ``reactions``, ``orders``,
  ``system`` and ``unknown``; ``registry`` maps each wire ``type`` to its class;
- ``statuses``: ``Status`` and its billing parts.

The dispatcher builds these events from the bodies the inbox stores (see
``whizrouter.stored_body``). Both payload shapes normalize to the same classes:

- a Cloud ``audio`` with ``audio.voice: true`` becomes a ``VoiceMessage`` (``type == "voice"``,
  media under ``.voice``), as on-premises voice notes already are;
- Cloud error objects (``message``, ``error_data.details``) fill the same ``ProviderErrorInfo``
  fields as on-premises ones (``details``);
- a Cloud number change (``system.wa_id``) fills ``System.new_wa_id`` like on-premises.

Models mirror the wire names (``from`` is ``from_``), keep every field they do not declare
(``model_extra``) and are frozen. Building them is lenient by design: a type whizrouter does
not model, or a known type whose payload does not validate, becomes an ``UnknownMessage`` that
keeps the raw item and says why; an unexpected status value stays a plain string.

Besides the wire fields, every event carries ``shape`` (``"onprem"`` or ``"cloud"``) and
``business`` (our number, from Cloud ``metadata``); messages also carry ``contact`` (the sender's
entry of the callback's ``contacts``). ``event.conversation`` is the ordering key the dispatcher
uses: a message's sender, a status' recipient.
"""

from __future__ import annotations

from whizrouter.events.contact_cards import (
    ContactAddress,
    ContactCard,
    ContactEmail,
    ContactName,
    ContactOrg,
    ContactPhone,
    ContactsMessage,
    ContactUrl,
)
from whizrouter.events.interactive import (
    Button,
    ButtonMessage,
    ButtonReply,
    Interactive,
    InteractiveMessage,
    ListReply,
    NfmReply,
)
from whizrouter.events.location import Location, LocationMessage
from whizrouter.events.media import Media, StickerMetadata
from whizrouter.events.media_messages import (
    AudioMessage,
    DocumentMessage,
    ImageMessage,
    StickerMessage,
    VideoMessage,
    VoiceMessage,
)
from whizrouter.events.message import Identity, Message, MessageContext, Referral, ReferredProduct
from whizrouter.events.orders import Order, OrderMessage, ProductItem
from whizrouter.events.reactions import Reaction, ReactionMessage
from whizrouter.events.registry import MESSAGE_TYPES, AnyMessage
from whizrouter.events.statuses import ConversationInfo, ConversationOrigin, Pricing, Status
from whizrouter.events.system import System, SystemMessage
from whizrouter.events.text import Text, TextMessage
from whizrouter.events.unknown import UnknownMessage, UnknownReason, Unsupported
from whizrouter.events.wire import (
    BusinessNumber,
    Contact,
    ErrorData,
    Profile,
    ProviderErrorInfo,
    WireModel,
)

__all__ = [
    "MESSAGE_TYPES",
    "AnyMessage",
    "AudioMessage",
    "BusinessNumber",
    "Button",
    "ButtonMessage",
    "ButtonReply",
    "Contact",
    "ContactAddress",
    "ContactCard",
    "ContactEmail",
    "ContactName",
    "ContactOrg",
    "ContactPhone",
    "ContactUrl",
    "ContactsMessage",
    "ConversationInfo",
    "ConversationOrigin",
    "DocumentMessage",
    "ErrorData",
    "Identity",
    "ImageMessage",
    "Interactive",
    "InteractiveMessage",
    "ListReply",
    "Location",
    "LocationMessage",
    "Media",
    "Message",
    "MessageContext",
    "NfmReply",
    "Order",
    "OrderMessage",
    "Pricing",
    "ProductItem",
    "Profile",
    "ProviderErrorInfo",
    "Reaction",
    "ReactionMessage",
    "Referral",
    "ReferredProduct",
    "Status",
    "StickerMessage",
    "StickerMetadata",
    "System",
    "SystemMessage",
    "Text",
    "TextMessage",
    "UnknownMessage",
    "UnknownReason",
    "Unsupported",
    "VideoMessage",
    "VoiceMessage",
    "WireModel",
]
