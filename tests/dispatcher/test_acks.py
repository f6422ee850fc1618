"""The acknowledgement path (``whizrouter.dispatcher.acks``): a durable inbox's replay slots."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from tests.dispatcher import MakeApp, Serve, post_texts
from whizrouter import Context, Message
from whizrouter.inbox.sqlite import SqliteInbox


class AckGatedInbox(SqliteInbox):
    """A durable inbox whose acks do not commit until the test opens the gate."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()

    async def ack(self, seqs: Sequence[int]) -> None:
        await self.gate.wait()
        await super().ack(seqs)


async def test_started_events_without_a_committed_ack_stay_within_the_cap(
    make_app: MakeApp, serve: Serve, tmp_path: Path
) -> None:
    # A crash replays every started event whose ack did not commit: at most ``concurrency``,
    # even though handlers that return at once do not wait for their own ack.
    cap = 4
    inbox = AckGatedInbox(tmp_path / "inbox.db")
    app = make_app(concurrency=cap, inbox=inbox)
    started: list[str] = []

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        started.append(ctx.conversation)

    client = await serve(app)
    for n in range(10):
        await post_texts(client, f"1555000{n:04d}", ["hi"])
    for _ in range(50):
        await asyncio.sleep(0.001)  # room for handlers beyond the cap to start, were it allowed
    assert len(started) == cap
    inbox.gate.set()
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert len(started) == 10 and inbox.backlog() == 0
