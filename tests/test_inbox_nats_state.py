"""Conversation state on NATS across processes' lifetimes: a state written whose ack never
reached NATS is not applied again when the event comes back, and a write based on a record
that changed meanwhile is refused (its event is handed out again)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tests.natsserver import nats_url, unique_stream
from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.errors import InboxError
from whizrouter.inbox.base import RawEvent
from whizrouter.inbox.nats import NatsInbox
from whizrouter.inbox.stored_state import StateWrite
from whizrouter.payloads import split_callback
from whizrouter.testing import FakeProvider, text_callback

__all__ = ["nats_url"]  # the fixture, imported so pytest finds it

WA_ID = "15550001111"


class AckLost(NatsInbox):
    """A NATS inbox whose acks never arrive: the process 'dies' between write and ack."""

    async def ack(self, seqs: Sequence[int]) -> None:
        raise InboxError("the ack never reached NATS")


def counter_bot(inbox: NatsInbox, provider: FakeProvider, runs: list[int]) -> WhizRouter:
    app = WhizRouter(shutdown_grace=1.0)
    app.replace_parts(client=provider.client(), inbox=inbox)

    @app.on_message(type="text")
    async def count(message: TextMessage, ctx: Context) -> None:
        data = await ctx.state.data()
        runs.append(ctx.attempt)
        await ctx.state.update(count=data.get("count", 0) + 1)

    return app


async def test_a_state_committed_before_a_lost_ack_is_not_applied_twice(nats_url: str) -> None:
    url = f"{nats_url}?stream={unique_stream()}&partitions=1&ack_wait=2&lease_ttl=1"
    runs: list[int] = []
    async with FakeProvider() as provider:
        first = counter_bot(AckLost.from_url(url), provider, runs)
        async with first:
            await first.feed(text_callback("one", wa_id=WA_ID))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while (stored := await first.inbox.load_state(WA_ID)) is None:
                assert loop.time() < deadline, "the state was never written"
                await asyncio.sleep(0.05)
            assert stored.data == {"count": 1}
        second = counter_bot(NatsInbox.from_url(url), provider, runs)
        async with second:
            deadline = loop.time() + 15
            while (await second.inbox.stats())["pending"]:
                assert loop.time() < deadline, "the event never came back to be settled"
                await asyncio.sleep(0.05)
            stored = await second.inbox.load_state(WA_ID)
    assert runs == [1]
    assert stored is not None
    assert stored.data == {"count": 1}


async def test_a_write_on_a_changed_record_is_refused_and_the_event_comes_back(
    nats_url: str,
) -> None:
    inbox = NatsInbox([nats_url], stream=unique_stream(), partitions=1, ack_wait=2, lease_ttl=1)
    await inbox.open()
    try:
        await inbox.put_state(WA_ID, "A", {})
        read = await inbox.load_state(WA_ID)
        assert read is not None
        await inbox.put_state(WA_ID, "B", {})  # `whizrouter state clear`, say
        await inbox.append([text_event()])
        [event] = await inbox.claim(10)
        write = StateWrite(WA_ID, "C", {}, event.seq, base=read.revision)
        follower = StateWrite(WA_ID, "D", {}, event.seq + 1, after=write)
        await inbox.ack_with_state([event.seq], [write, follower])
        assert write.failed and follower.failed
        stored = await inbox.load_state(WA_ID)
        assert stored is not None and stored.state == "B"
        [again] = await asyncio.wait_for(inbox.claim(10), 10)
        assert again.seq == event.seq
    finally:
        await inbox.close()


def text_event() -> RawEvent:
    [raw] = split_callback(text_callback("x", wa_id=WA_ID))
    return raw
