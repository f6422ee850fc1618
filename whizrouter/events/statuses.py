"""The status of a message we sent: ``Status`` and the billing parts it carries.

Everything here is re-exported by ``whizrouter.events``, the place to import it from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from whizrouter.defaults import ApiShape
from whizrouter.events.wire import BusinessNumber, ProviderErrorInfo, WireModel, to_datetime


class ConversationOrigin(WireModel):
    """What opened a conversation: ``type`` (``service``, ``marketing``, ... as sent)."""

    type: str | None = None


class ConversationInfo(WireModel):
    """The billing conversation a status belongs to (wire ``conversation``).

    Attributes:
        id: the conversation id.
        expiration_timestamp: only on the status that opened the conversation.
        origin: what opened it.
    """

    id: str | None = None
    expiration_timestamp: str | None = None
    origin: ConversationOrigin | None = None


class Pricing(WireModel):
    """How a message is billed.

    Attributes:
        billable: deprecated by Meta with per-message pricing; may be absent.
        pricing_model: ``CBP`` (per conversation), ``PMP`` (per message), older ``NBP``.
        category: ``service``, ``marketing``, ``utility``, ``authentication``, ...
        type: per-message pricing: ``regular``, ``free_customer_service``, ...
    """

    billable: bool | None = None
    pricing_model: str | None = None
    category: str | None = None
    type: str | None = None


class Status(WireModel):
    """Something happened to a message we sent (or, ``deleted``, to one the user sent).

    The wire ``conversation`` object is ``conversation_info``: ``conversation`` is the
    ordering key, as on messages.

    Attributes:
        id: the id of the message the status is about.
        status: ``sent``, ``delivered``, ``read``, ``failed``, ``deleted``, ``warning``,
            ``played`` or any newer value, kept as a plain string.
        timestamp: Unix seconds, a string as on the wire.
        recipient_id: the customer's WhatsApp id (or a group id); falls back to
            ``message.recipient_id`` of late on-premises clients.
        conversation_info: the billing conversation (wire ``conversation``); absent with
            per-message pricing.
        pricing: how the message is billed.
        errors: why it failed (``failed``) or what went wrong (``warning``).
        biz_opaque_callback_data: the tracking string we sent with the message.
        recipient_type: ``group`` for group statuses.
        recipient_participant_id: group statuses: the member the status is about.
        shape: not on the wire: which callback shape carried the status.
        business: not on the wire: our number (Cloud ``metadata``); on-premises ``None``, or
            the configured number whose webhook path received it (``business.number``).
        validation_error: not on the wire: set when some fields did not validate; those
            fields are left at their defaults and ``raw`` holds the status as sent.
        raw: the status exactly as sent, only when ``validation_error`` is set.
    """

    id: str
    status: str
    timestamp: str
    recipient_id: str | None = None
    conversation_info: ConversationInfo | None = Field(
        None, validation_alias="conversation", serialization_alias="conversation"
    )
    pricing: Pricing | None = None
    errors: list[ProviderErrorInfo] = Field(default_factory=list)
    biz_opaque_callback_data: str | None = None
    recipient_type: str | None = None
    recipient_participant_id: str | None = None
    shape: ApiShape = "onprem"
    business: BusinessNumber | None = None
    validation_error: str | None = None
    raw: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _recipient_from_message(self) -> Status:
        # Some statuses carry the recipient only in a nested ``message`` object. An
        # ``after`` validator, not a ``before`` one: that would make every status leave
        # pydantic's JSON fast path and cost half again as much to decode. ``message`` stays
        # in the extras, as sent.
        if self.recipient_id is None and self.__pydantic_extra__:
            nested = self.__pydantic_extra__.get("message")
            if isinstance(nested, dict) and isinstance(nested.get("recipient_id"), str):
                object.__setattr__(self, "recipient_id", nested["recipient_id"])
                self.__pydantic_fields_set__.add("recipient_id")
        return self

    @property
    def conversation(self) -> str:
        """The ordering key: ``recipient_id``, or ``status:<id>`` when there is none."""
        return self.recipient_id if self.recipient_id is not None else "status:" + self.id

    @property
    def conversation_id(self) -> str | None:
        """The billing conversation's id, or ``None`` (per-message pricing, most statuses)."""
        info = self.conversation_info
        return info.id if info is not None else None

    @property
    def timestamp_dt(self) -> datetime | None:
        """``timestamp`` as an aware UTC datetime, or ``None`` when it is not a number."""
        return to_datetime(self.timestamp)
