"""The message-type registry covers every message class."""

from __future__ import annotations

from typing import get_args

from whizrouter.events import MESSAGE_TYPES, AnyMessage, Message, UnknownMessage


def test_every_message_class_is_reachable() -> None:
    classes = set(get_args(AnyMessage))
    assert set(MESSAGE_TYPES.values()) | {UnknownMessage} == classes
    assert all(issubclass(cls, Message) for cls in classes)
