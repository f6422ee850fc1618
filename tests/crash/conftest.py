"""What the crash tests share: bot processes that never outlive their test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.process import BotProcess

#: Starts nothing yet: builds a ``BotProcess`` of a bot target with its environment and port.
MakeBot = Callable[[str, dict[str, str], int], BotProcess]


@pytest.fixture
def bot_processes() -> Iterator[MakeBot]:
    """Makes bot processes, and kills any still running when the test ends (also failed)."""
    made: list[BotProcess] = []

    def make(target: str, env: dict[str, str], port: int) -> BotProcess:
        made.append(BotProcess(target, env, port=port))
        return made[-1]

    yield make
    for bot in made:
        bot.kill()
