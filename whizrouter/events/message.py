"""The ``Message`` base class: the fields every incoming message carries, and their parts.

Each message type subclasses it in its own module (``whizrouter.events.registry`` lists them);
the parts here (reply context, ad referral, identity) can come with a message of any type.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from whizrouter.defaults import ApiShape
from whizrouter.events.media import Media
from whizrouter.events.wire import (
    BusinessNumber,
    Contact,
    ProviderErrorInfo,
    WireModel,
    to_datetime,
)


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
        business: not on the wire: our number (Cloud ``metadata``); on-premises ``None``, or
            the configured number whose webhook path received it (``business.number``).
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
