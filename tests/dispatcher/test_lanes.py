"""The lanes (``whizrouter.dispatcher.lanes``): conversation order, the concurrency cap, and
conversations that do not wait on each other."""

from __future__ import annotations

import asyncio

from tests.conftest import Recorder
from tests.dispatcher import MakeApp, Serve, post_texts
from whizrouter import Context, Message, TextMessage


async def test_one_conversation_runs_in_arrival_order_one_at_a_time(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = make_app(concurrency=8)
    running = 0
    overlap = 0

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        nonlocal running, overlap
        running += 1
        overlap = max(overlap, running)
        await asyncio.sleep(0)  # give another event of this conversation a chance to interleave
        await asyncio.sleep(0)
        running -= 1
        await recorder.add(message.text.body)

    client = await serve(app)
    texts = [f"m{i}" for i in range(40)]
    await post_texts(client, "15550000001", texts)
    assert await recorder.wait_for(40) == texts
    assert overlap == 1


async def test_conversations_run_concurrently_up_to_the_cap(
    make_app: MakeApp, serve: Serve
) -> None:
    cap = 4
    app = make_app(concurrency=cap)
    release = asyncio.Event()
    active: set[str] = set()
    peak = 0
    reached = asyncio.Event()

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        nonlocal peak
        active.add(ctx.conversation)
        peak = max(peak, len(active))
        if len(active) >= cap:
            reached.set()
        await release.wait()
        active.discard(ctx.conversation)

    client = await serve(app)
    for n in range(10):
        await post_texts(client, f"1555000{n:04d}", ["hi"])
    await asyncio.wait_for(reached.wait(), timeout=5)
    # Let the loop run: nothing beyond the cap may start while all handlers are blocked.
    for _ in range(20):
        await asyncio.sleep(0)
    assert peak == cap
    release.set()
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert app.dispatcher.handled == 10


async def test_slow_conversation_does_not_block_others(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = make_app(concurrency=4)
    gate = asyncio.Event()

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        if ctx.conversation == "15550000001":
            await gate.wait()
        await recorder.add(ctx.conversation)

    client = await serve(app)
    await post_texts(client, "15550000001", ["stuck", "behind"])
    for n in range(2, 7):
        await post_texts(client, f"155500000{n:02d}", ["free"])
    seen = await recorder.wait_for(5)
    assert "15550000001" not in seen
    gate.set()
    assert (await recorder.wait_for(7)).count("15550000001") == 2
