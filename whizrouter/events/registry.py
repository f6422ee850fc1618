"""The message types: which class each wire ``type`` becomes.

``MESSAGE_TYPES`` is the one table of modelled types; decoding builds its validator from it,
so a class added here is decoded too. ``AnyMessage`` is every class a message can be.
"""

from __future__ import annotations

from typing import TypeAlias

from whizrouter.events.contact_cards import ContactsMessage
from whizrouter.events.interactive import ButtonMessage, InteractiveMessage
from whizrouter.events.location import LocationMessage
from whizrouter.events.media_messages import (
    AudioMessage,
    DocumentMessage,
    ImageMessage,
    StickerMessage,
    VideoMessage,
    VoiceMessage,
)
from whizrouter.events.message import Message
from whizrouter.events.orders import OrderMessage
from whizrouter.events.reactions import ReactionMessage
from whizrouter.events.system import SystemMessage
from whizrouter.events.text import TextMessage
from whizrouter.events.unknown import UnknownMessage

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
"""Every class a decoded message can be."""

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
