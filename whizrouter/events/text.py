"""Text messages: what the user wrote."""

from __future__ import annotations

from typing import Literal

from whizrouter.events.message import Message
from whizrouter.events.wire import WireModel


class Text(WireModel):
    """A text payload: ``body`` is what the user wrote."""

    body: str


class TextMessage(Message):
    """A text message; ``text.body`` is what the user wrote."""

    type: Literal["text"]
    text: Text
