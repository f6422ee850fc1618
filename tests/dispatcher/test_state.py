"""The dispatcher's one state (``whizrouter.dispatcher.state``) and its transitions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.dispatcher import MakeApp
from whizrouter import Context, Message
from whizrouter.dispatcher.state import Lifecycle, State
from whizrouter.testing import text_callback


def test_only_a_running_dispatcher_starts_to_stop() -> None:
    life = Lifecycle()
    states = [life.state]
    assert life.stop_intake(durable=True)
    states.append(life.state)
    assert not life.stop_intake(durable=False)  # a second drain changes nothing
    states.append(life.state)
    life.workers_ended()
    assert not life.stop_intake(durable=True)
    states.append(life.state)
    assert states == [State.RUNNING, State.LEAVING, State.LEAVING, State.STOPPED]


async def test_a_pause_ends_when_the_dispatcher_starts_to_stop() -> None:
    life = Lifecycle()
    pause = asyncio.create_task(life.pause(60.0))
    await asyncio.sleep(0)
    assert not pause.done()
    life.stop_intake(durable=False)
    await asyncio.wait_for(pause, timeout=5)


@pytest.mark.parametrize(
    ("backend", "stopping"), [("memory", State.DRAINING), ("sqlite", State.LEAVING)]
)
async def test_a_stop_drains_a_memory_inbox_and_leaves_a_durable_one(
    make_app: MakeApp, tmp_path: Path, backend: str, stopping: State
) -> None:
    app = make_app(inbox="memory" if backend == "memory" else f"sqlite:///{tmp_path / 'i.db'}")
    started = asyncio.Event()
    finish = asyncio.Event()

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        started.set()
        await finish.wait()

    await app.start()
    dispatcher = app.dispatcher
    assert dispatcher is not None
    states = [dispatcher.state]
    await app.feed(text_callback("hi"))
    await asyncio.wait_for(started.wait(), timeout=5)
    stop = asyncio.create_task(app.stop())
    await asyncio.sleep(0)  # stop() begins: the dispatcher is told to stop
    states.append(dispatcher.state)
    finish.set()
    await asyncio.wait_for(stop, timeout=5)
    states.append(dispatcher.state)
    assert states == [State.RUNNING, stopping, State.STOPPED]
