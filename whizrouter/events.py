"""Typed events: one pydantic model per message type, ``UnknownMessage`` and ``Status``.

The dispatcher turns each stored envelope (see ``whizrouter.payloads``) into an event with
``parse_message`` or ``parse_status``; they live in ``whizrouter.parsing``. The message models
live here, ``Status`` and its billing parts in ``whizrouter.statuses``, the base model and
the parts both share in ``whizrouter.wire``; this module re-exports them all, so import every
event class from here. Both payload shapes normalize to the same classes:

- a Cloud ``audio`` with ``audio.voice: true`` becomes a ``VoiceMessage`` (``type == "voice"``,
  media under ``.voice``), as on-premises voice notes already are;
- Cloud error objects (``message``, ``error_data.details``) fill the same ``ProviderErrorInfo``
  fields as on-premises ones (``details``);
- a Cloud number change (``system.wa_id``) fills ``System.new_wa_id`` like on-premises.

Models mirror the wire names (``from`` is ``from_``), keep every field they do not declare
(``model_extra``) and are frozen. Parsing is lenient by design: a type whizrouter does not model,
or a known type whose payload does not validate, becomes an ``UnknownMessage`` that keeps the
raw item and says why; an unexpected status value stays a plain string. Neither entry point
raises for an envelope that ``split_callback`` produced.

Besides the wire fields, every event carries ``shape`` (``"onprem"`` or ``"cloud"``) and
``business`` (our number, from Cloud ``metadata``); messages also carry ``contact`` (the sender's
entry of the callback's ``contacts``). ``event.conversation`` is the ordering key the dispatcher
uses: a message's sender, a status' recipient.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import ConfigDict, Field, model_validator

from whizrouter.defaults import ApiShape
from whizrouter.statuses import ConversationInfo, ConversationOrigin, Pricing, Status
from whizrouter.wire import (
    BusinessNumber,
    Contact,
    ErrorData,
    Profile,
    ProviderErrorInfo,
    WireModel,
    to_datetime,
)

if TYPE_CHECKING:
    from whizrouter.parsing import parse_message, parse_status

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
    "parse_message",
    "parse_status",
]

#: Why a message became an ``UnknownMessage``: the provider could not render it (``unknown``,
#: ``unsupported``, ``ephemeral``), whizrouter has no class for its type, or its payload did
#: not validate (see ``UnknownMessage.validation_error``).
UnknownReason = Literal["unsupported", "unmodelled", "invalid"]


class ReferredProduct(WireModel):
    """The product (``catalog_id``, ``product_retailer_id``) a user asked about."""

    catalog_id: str | None = None
    product_retailer_id: str | None = None


class MessageContext(WireModel):
    """Reply, forward and product information of a message.

    Attributes:
        from_: who sent the quoted message (wire ``from``; our number when quoting us).
        id: the quoted message's id.
        forwarded: the message was forwarded.
        frequently_forwarded: the message was forwarded many times.
        referred_product: the product the user asked about.
        mentions: legacy group chats: the ids mentioned.
        group_id: legacy group chats: the group replied in.
    """

    from_: str | None = Field(None, validation_alias="from", serialization_alias="from")
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None
    referred_product: ReferredProduct | None = None
    mentions: list[str] = Field(default_factory=list)
    group_id: str | None = None


class StickerMetadata(WireModel):
    """Sticker pack information; on the wire the keys are dash-separated (``sticker-pack-id``).

    Attributes:
        sticker_pack_id: the pack id.
        sticker_pack_name: the pack name.
        sticker_pack_publisher: who published the pack.
        emojis: the emojis the sticker stands for.
        ios_app_store_link: the pack's App Store link.
        android_app_store_link: the pack's Play Store link.
        is_first_party_sticker: ``1`` for WhatsApp's own stickers, ``0`` otherwise.
    """

    model_config = ConfigDict(alias_generator=lambda name: name.replace("_", "-"))

    sticker_pack_id: str | None = None
    sticker_pack_name: str | None = None
    sticker_pack_publisher: str | None = None
    emojis: list[str] = Field(default_factory=list)
    ios_app_store_link: str | None = None
    android_app_store_link: str | None = None
    is_first_party_sticker: int | None = None


class Media(WireModel):
    """A media object: image, video, audio, voice note, document or sticker.

    Attributes:
        id: the media id to download it with.
        mime_type: its MIME type.
        sha256: the file's hash.
        caption: image, video and document captions.
        filename: documents only.
        url: Cloud only, a download URL (still needs the API key).
        link: a public link, when the media was given by link.
        voice: Cloud only, ``True`` on a voice note sent as ``audio``.
        animated: Cloud stickers only.
        metadata: on-premises stickers only, the sticker pack.
    """

    id: str
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    url: str | None = None
    link: str | None = None
    voice: bool | None = None
    animated: bool | None = None
    metadata: StickerMetadata | None = None


class Referral(WireModel):
    """The ad or post that opened the chat; both shapes' fields, all optional.

    Attributes:
        headline: the ad's headline.
        body: the ad's text.
        source_type: ``ad`` or ``post``.
        source_id: the ad or post id.
        source_url: a link to the ad or post.
        image: on-premises only, the ad's image.
        video: on-premises only, the ad's video.
        media_type: Cloud only, ``image`` or ``video``.
        image_url: Cloud only.
        video_url: Cloud only.
        thumbnail_url: Cloud only.
        ctwa_clid: Cloud only, the click id of a click-to-WhatsApp ad.
    """

    headline: str | None = None
    body: str | None = None
    source_type: str | None = None
    source_id: str | None = None
    source_url: str | None = None
    image: Media | None = None
    video: Media | None = None
    media_type: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    thumbnail_url: str | None = None
    ctwa_clid: str | None = None


class Identity(WireModel):
    """Present when the user's security code changed and the identity check is on.

    Attributes:
        acknowledged: whether the change was acknowledged.
        created_timestamp: when it changed: an integer (milliseconds) on-premises, a string in
            Cloud.
        hash: the identity hash.
    """

    acknowledged: bool | None = None
    created_timestamp: int | str | None = None
    hash: str | None = None


# --- message payloads ---------------------------------------------------------------------


class Text(WireModel):
    """A text payload: ``body`` is what the user wrote."""

    body: str


class Location(WireModel):
    """A location pin: ``latitude`` and ``longitude`` in degrees, optional ``name``, ``address``."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class ContactName(WireModel):
    """The name on a shared contact card (``formatted_name`` is the displayed one)."""

    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    prefix: str | None = None
    suffix: str | None = None


class ContactPhone(WireModel):
    """A phone on a shared contact card; ``wa_id`` is set when the number is on WhatsApp."""

    phone: str | None = None
    type: str | None = None
    wa_id: str | None = None


class ContactEmail(WireModel):
    """An email address on a shared contact card (``type``: ``HOME``, ``WORK``, ...)."""

    email: str | None = None
    type: str | None = None


class ContactAddress(WireModel):
    """A postal address on a shared contact card (``country_code``: two letters)."""

    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class ContactOrg(WireModel):
    """The organization on a shared contact card: ``company``, ``department``, ``title``."""

    company: str | None = None
    department: str | None = None
    title: str | None = None


class ContactUrl(WireModel):
    """A web address on a shared contact card (``type``: ``HOME``, ``WORK``, ...)."""

    url: str | None = None
    type: str | None = None


class ContactCard(WireModel):
    """A contact the user shared (one item of a ``contacts`` message).

    Attributes:
        name: the contact's name.
        phones: phone numbers.
        emails: email addresses.
        addresses: postal addresses.
        org: organization.
        urls: web addresses.
        birthday: ``YYYY-MM-DD``.
    """

    name: ContactName | None = None
    phones: list[ContactPhone] = Field(default_factory=list)
    emails: list[ContactEmail] = Field(default_factory=list)
    addresses: list[ContactAddress] = Field(default_factory=list)
    org: ContactOrg | None = None
    urls: list[ContactUrl] = Field(default_factory=list)
    birthday: str | None = None


class ButtonReply(WireModel):
    """The reply button the user tapped: the ``id`` we gave it and its ``title``."""

    id: str
    title: str


class ListReply(WireModel):
    """The list row the user picked: our ``id``, its ``title`` and ``description``."""

    id: str
    title: str
    description: str | None = None


class NfmReply(WireModel):
    """Cloud only: a Flow's answer; ``response_json`` holds the answers as a JSON string."""

    name: str | None = None
    body: str | None = None
    response_json: str | None = None


class Interactive(WireModel):
    """An answer to an interactive message we sent.

    Attributes:
        type: ``button_reply``, ``list_reply``, ``nfm_reply``, or a newer kind (kept as is).
        button_reply: set when ``type`` is ``button_reply``.
        list_reply: set when ``type`` is ``list_reply``.
        nfm_reply: set when ``type`` is ``nfm_reply``.
    """

    type: str
    button_reply: ButtonReply | None = None
    list_reply: ListReply | None = None
    nfm_reply: NfmReply | None = None


class Button(WireModel):
    """A tapped template quick-reply button: our ``payload`` (may be ``None``), its ``text``."""

    payload: str | None = None
    text: str


class Reaction(WireModel):
    """A reaction to ``message_id``; ``emoji`` is ``None`` or empty when it was removed."""

    message_id: str
    emoji: str | None = None


class ProductItem(WireModel):
    """One line of an order: ``product_retailer_id``, ``quantity``, ``item_price``, ``currency``."""

    product_retailer_id: str
    quantity: int | None = None
    item_price: float | None = None
    currency: str | None = None


class Order(WireModel):
    """A cart the user sent.

    Attributes:
        catalog_id: the catalog ordered from.
        text: the user's note.
        product_items: the lines of the order.
    """

    catalog_id: str | None = None
    text: str | None = None
    product_items: list[ProductItem] = Field(default_factory=list)


class System(WireModel):
    """A system notice about the user (number or identity changed).

    Attributes:
        type: as sent: ``user_changed_number``, ``user_identity_changed``,
            ``customer_identity_changed``, ...
        body: a human-readable description.
        new_wa_id: the user's new WhatsApp id after a number change (Cloud's ``wa_id``).
        wa_id: Cloud only, as sent.
        identity: on-premises identity changes: the new identity hash.
        user: on-premises identity changes: whose identity changed.
        customer: older Cloud payloads: whose number changed.
    """

    type: str | None = None
    body: str | None = None
    new_wa_id: str | None = None
    wa_id: str | None = None
    identity: str | None = None
    user: str | None = None
    customer: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _new_wa_id_from_wa_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("new_wa_id") is None:
            wa_id = data.get("wa_id")
            if wa_id is not None:
                return {**data, "new_wa_id": wa_id}
        return data


class Unsupported(WireModel):
    """Cloud only: what an ``unsupported`` message was (``type``, e.g. ``poll``)."""

    type: str | None = None


# --- messages -----------------------------------------------------------------------------


class Message(WireModel):
    """Base of every incoming message; ``isinstance`` on the subclasses to tell them apart.

    Attributes:
        id: the message id (opaque).
        from_: the sender's WhatsApp id (wire ``from``).
        timestamp: Unix seconds, a string as on the wire.
        type: the message type; ``"voice"`` for voice notes in both shapes.
        context: reply, forward or product information.
        referral: the ad or post that opened the chat.
        identity: set when the user's security code changed.
        errors: errors the provider attached to the message.
        group_id: legacy group chats only.
        shape: not on the wire: which callback shape carried the message.
        contact: not on the wire: the sender's entry of the callback's ``contacts``, or
            ``None`` (on-premises system messages come without one).
        business: not on the wire: our number (Cloud ``metadata``); ``None`` on-premises.
    """

    id: str
    from_: str = Field(validation_alias="from", serialization_alias="from")
    timestamp: str
    type: str
    context: MessageContext | None = None
    referral: Referral | None = None
    identity: Identity | None = None
    errors: list[ProviderErrorInfo] = Field(default_factory=list)
    group_id: str | None = None
    shape: ApiShape = "onprem"
    contact: Contact | None = None
    business: BusinessNumber | None = None

    @property
    def conversation(self) -> str:
        """The ordering key of the message: the sender's WhatsApp id."""
        return self.from_

    @property
    def timestamp_dt(self) -> datetime | None:
        """``timestamp`` as an aware UTC datetime, or ``None`` when it is not a number."""
        return to_datetime(self.timestamp)


class TextMessage(Message):
    """A text message; ``text.body`` is what the user wrote."""

    type: Literal["text"]
    text: Text


class ImageMessage(Message):
    """An image; ``image`` holds the media id and caption."""

    type: Literal["image"]
    image: Media


class VideoMessage(Message):
    """A video; ``video`` holds the media id and caption."""

    type: Literal["video"]
    video: Media


class AudioMessage(Message):
    """An attached audio file in ``audio`` (voice notes are ``VoiceMessage``)."""

    type: Literal["audio"]
    audio: Media


class VoiceMessage(Message):
    """A voice note: on-premises ``type: voice``, Cloud ``audio`` with ``voice: true``.

    ``type`` is ``"voice"`` in both shapes; a Cloud voice note also keeps its ``audio`` key
    as an extra field.

    Attributes:
        voice: the media.
    """

    type: Literal["voice"]
    voice: Media


class DocumentMessage(Message):
    """A document; ``document`` holds the media id, filename and caption."""

    type: Literal["document"]
    document: Media


class StickerMessage(Message):
    """A sticker; ``sticker`` has pack ``metadata`` on-premises, ``animated`` in Cloud."""

    type: Literal["sticker"]
    sticker: Media


class LocationMessage(Message):
    """A location pin in ``location``."""

    type: Literal["location"]
    location: Location


class ContactsMessage(Message):
    """Contacts the user shared.

    Attributes:
        contacts: the shared cards. Not the sender: that is ``contact``, from the callback's
            top-level ``contacts`` list.
    """

    type: Literal["contacts"]
    contacts: list[ContactCard]


class InteractiveMessage(Message):
    """An answer to our reply buttons, list or flow, in ``interactive``."""

    type: Literal["interactive"]
    interactive: Interactive

    @property
    def reply_id(self) -> str | None:
        """The id of the tapped button or picked row, or ``None`` for other answers."""
        reply = self.interactive.button_reply or self.interactive.list_reply
        return reply.id if reply is not None else None

    @property
    def reply_title(self) -> str | None:
        """The title of the tapped button or picked row, or ``None`` for other answers."""
        reply = self.interactive.button_reply or self.interactive.list_reply
        return reply.title if reply is not None else None


class ButtonMessage(Message):
    """A tapped quick-reply button of a template, in ``button``."""

    type: Literal["button"]
    button: Button


class ReactionMessage(Message):
    """A reaction to a message, or its removal, in ``reaction``."""

    type: Literal["reaction"]
    reaction: Reaction

    @property
    def removed(self) -> bool:
        """Whether the user removed their reaction (no emoji)."""
        return not self.reaction.emoji


class OrderMessage(Message):
    """A cart the user sent from a catalog, in ``order``."""

    type: Literal["order"]
    order: Order


class SystemMessage(Message):
    """A system notice in ``system``: the user changed number or identity."""

    type: Literal["system"]
    system: System

    @property
    def new_wa_id(self) -> str | None:
        """The user's new WhatsApp id after a number change, in both shapes."""
        return self.system.new_wa_id

    @property
    def system_type(self) -> str | None:
        """``system.type`` as the provider sent it (e.g. ``user_changed_number``)."""
        return self.system.type


class UnknownMessage(Message):
    """A message whizrouter cannot give a typed payload: it never breaks a bot.

    Made for the provider's ``unknown``, ``unsupported`` and ``ephemeral`` types, for types
    whizrouter does not model (``edit``, ``revoke``, ``request_welcome``, anything new), and
    for a known type whose payload did not validate. ``type`` is what the provider sent, so a
    handler filtering on ``type`` alone can receive one: check ``isinstance``. Every wire
    field is kept (undeclared ones in ``model_extra``) and ``raw`` holds the item as sent.

    Attributes:
        reason: ``unsupported`` (the provider could not render it), ``unmodelled`` (no class
            for its type) or ``invalid`` (its payload did not validate).
        validation_error: what did not validate, one line; ``None`` unless something failed.
        unsupported: Cloud only: what the unsupported message was.
        raw: the message object exactly as the provider sent it.
    """

    reason: UnknownReason = "unmodelled"
    validation_error: str | None = None
    unsupported: Unsupported | None = None
    raw: dict[str, Any] = Field(default_factory=dict)

    @property
    def unsupported_type(self) -> str | None:
        """Cloud only: the kind of message the provider could not render (e.g. ``poll``)."""
        return self.unsupported.type if self.unsupported is not None else None


AnyMessage: TypeAlias = (
    TextMessage
    | ImageMessage
    | VideoMessage
    | AudioMessage
    | VoiceMessage
    | DocumentMessage
    | StickerMessage
    | LocationMessage
    | ContactsMessage
    | InteractiveMessage
    | ButtonMessage
    | ReactionMessage
    | OrderMessage
    | SystemMessage
    | UnknownMessage
)
"""Every message class ``parse_message`` can return."""

#: Wire ``type`` → class. Any type not listed parses as an ``UnknownMessage``.
MESSAGE_TYPES: dict[str, type[Message]] = {
    "text": TextMessage,
    "image": ImageMessage,
    "video": VideoMessage,
    "audio": AudioMessage,
    "voice": VoiceMessage,
    "document": DocumentMessage,
    "sticker": StickerMessage,
    "location": LocationMessage,
    "contacts": ContactsMessage,
    "interactive": InteractiveMessage,
    "button": ButtonMessage,
    "reaction": ReactionMessage,
    "order": OrderMessage,
    "system": SystemMessage,
}


# --- statuses -----------------------------------------------------------------------------


def __getattr__(name: str) -> Any:
    # parse_message and parse_status live in whizrouter.parsing, which imports the models
    # from here: re-export them on first use, so importing either module first works.
    if name in ("parse_message", "parse_status"):
        from whizrouter import parsing

        value = getattr(parsing, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
