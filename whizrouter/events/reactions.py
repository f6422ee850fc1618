"""Reaction messages: an emoji on one of the chat's messages, or its removal."""

from __future__ import annotations

from typing import Literal

from whizrouter.events.message import Message
from whizrouter.events.wire import WireModel


class Reaction(WireModel):
    """A reaction to ``message_id``; ``emoji`` is ``None`` or empty when it was removed."""

    message_id: str
    emoji: str | None = None


class ReactionMessage(Message):
    """A reaction to a message, or its removal, in ``reaction``."""

    type: Literal["reaction"]
    reaction: Reaction

    @property
    def removed(self) -> bool:
        """Whether the user removed their reaction (no emoji)."""
        return not self.reaction.emoji
