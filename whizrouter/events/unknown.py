"""``UnknownMessage``: what a message becomes when whizrouter cannot give it a typed payload."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from whizrouter.events.message import Message
from whizrouter.events.wire import WireModel

#: Why a message became an ``UnknownMessage``: the provider could not render it (``unknown``,
#: ``unsupported``, ``ephemeral``), whizrouter has no class for its type, or its payload did
#: not validate (see ``UnknownMessage.validation_error``).
UnknownReason = Literal["unsupported", "unmodelled", "invalid"]


class Unsupported(WireModel):
    """Cloud only: what an ``unsupported`` message was (``type``, e.g. ``poll``)."""

    type: str | None = None


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
