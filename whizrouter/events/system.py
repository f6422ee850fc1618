"""System messages: notices that the user changed number or identity.

Both shapes fill ``System.new_wa_id``: on-premises sends it, Cloud sends ``wa_id``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from whizrouter.events.message import Message
from whizrouter.events.wire import WireModel


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
