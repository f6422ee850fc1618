"""``Replies``: what ``BotTester.text`` answers, the texts the bot sent and every message typed.

It is the list of the text bodies (so ``await bot.text("hi") == ["echo: hi"]`` holds) and
carries the typed messages of :mod:`whizrouter.testing.sent`, so
``(await bot.text("menu")).buttons[0].id`` reads the first button's id.
"""

from __future__ import annotations

from collections.abc import Iterable

from whizrouter.testing.sent import (
    ListRow,
    ReplyButton,
    SentButtons,
    SentList,
    SentMedia,
    SentMessage,
    SentReaction,
    SentTemplate,
    SentText,
)


class Replies(list[str]):
    """What the bot sent back: the bodies of its texts (it is that list of strings, so
    ``await bot.text("hi") == ["echo: hi"]`` holds), and every message typed.

    Attributes:
        messages: every message sent, typed, in order (texts included).
    """

    def __init__(self, messages: Iterable[SentMessage]) -> None:
        self.messages: list[SentMessage] = list(messages)
        super().__init__(m.body for m in self.messages if isinstance(m, SentText))

    @property
    def texts(self) -> list[SentText]:
        """The text messages."""
        return [m for m in self.messages if isinstance(m, SentText)]

    @property
    def buttons(self) -> list[ReplyButton]:
        """The buttons of every button message, in order."""
        return [b for m in self.messages if isinstance(m, SentButtons) for b in m.buttons]

    @property
    def rows(self) -> list[ListRow]:
        """The rows of every list message, in order."""
        return [r for m in self.messages if isinstance(m, SentList) for r in m.rows]

    @property
    def media(self) -> list[SentMedia]:
        """The images, videos, audio, documents and stickers."""
        return [m for m in self.messages if isinstance(m, SentMedia)]

    @property
    def templates(self) -> list[SentTemplate]:
        """The template messages."""
        return [m for m in self.messages if isinstance(m, SentTemplate)]

    @property
    def reactions(self) -> list[SentReaction]:
        """The reactions."""
        return [m for m in self.messages if isinstance(m, SentReaction)]
