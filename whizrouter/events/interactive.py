"""Answers to what we sent: reply buttons, list rows and flows, and template buttons.

An ``InteractiveMessage`` answers an interactive message (``button_reply``, ``list_reply``,
``nfm_reply``); a ``ButtonMessage`` is a tapped quick-reply button of a template.
"""

from __future__ import annotations

from typing import Literal

from whizrouter.events.message import Message
from whizrouter.events.wire import WireModel


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


class Button(WireModel):
    """A tapped template quick-reply button: our ``payload`` (may be ``None``), its ``text``."""

    payload: str | None = None
    text: str


class ButtonMessage(Message):
    """A tapped quick-reply button of a template, in ``button``."""

    type: Literal["button"]
    button: Button
