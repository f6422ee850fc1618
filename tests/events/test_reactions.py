"""Reaction messages, and their removal."""

from __future__ import annotations

from typing import Any

import pytest

from tests.events.samples import BASE, message, one
from whizrouter.events import ReactionMessage


@pytest.mark.parametrize(
    ("name", "emoji"), [("onprem/reaction.json", "👍"), ("cloud/reaction.json", "😮")]
)
def test_reaction(name: str, emoji: str) -> None:
    msg = one(name, ReactionMessage)
    assert msg.reaction.emoji == emoji
    assert msg.removed is False


@pytest.mark.parametrize(
    "reaction", [{"message_id": "wamid.X"}, {"message_id": "wamid.X", "emoji": ""}]
)
def test_reaction_removed(reaction: dict[str, Any]) -> None:
    msg = message({**BASE, "type": "reaction", "reaction": reaction})
    assert isinstance(msg, ReactionMessage)
    assert msg.removed is True
