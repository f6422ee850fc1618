"""One timer for every body read's deadline: what the ASGI app's 408 rests on.

The 408 itself, over HTTP, is checked for both servers in tests/test_receiver.py and under a
uvicorn process in tests/test_asgi.py; here, the deadlines' own promises.
"""

from __future__ import annotations

import asyncio
from time import monotonic

import pytest

from whizrouter.read_deadlines import ReadDeadlines


async def _read(deadlines: ReadDeadlines, stall: asyncio.Event) -> str:
    """A read that waits for ``stall``; says how it ended."""
    task = deadlines.begin(monotonic())
    try:
        await stall.wait()
    except asyncio.CancelledError:
        if not deadlines.cut(task):
            raise
        return "cut"
    finally:
        deadlines.end(task)
    return "read"


async def test_a_stalled_read_is_cut_after_its_deadline_and_within_one_tick() -> None:
    deadlines = ReadDeadlines(0.2)
    began = monotonic()
    assert await asyncio.wait_for(_read(deadlines, asyncio.Event()), 5) == "cut"
    took = monotonic() - began
    assert deadlines.seconds <= took < deadlines.seconds + deadlines.tick + 0.2
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_reads_that_finish_in_time_are_left_alone_and_the_timer_stops() -> None:
    deadlines = ReadDeadlines(0.2)
    done = asyncio.Event()
    done.set()
    for _ in range(100):
        assert await _read(deadlines, done) == "read"
    late = asyncio.Event()
    reader = asyncio.create_task(_read(deadlines, late))
    await asyncio.sleep(deadlines.seconds / 2)
    late.set()
    assert await reader == "read"
    await asyncio.sleep(deadlines.tick * 2)
    assert deadlines._timer is None  # nothing under way: no timer left armed


async def test_a_read_cancelled_by_someone_else_is_not_taken_for_a_deadline() -> None:
    deadlines = ReadDeadlines(10.0)
    reader = asyncio.create_task(_read(deadlines, asyncio.Event()))
    await asyncio.sleep(0.01)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert deadlines._reads == {}


async def test_only_the_overdue_read_of_several_is_cut() -> None:
    deadlines = ReadDeadlines(0.2)
    stall, soon = asyncio.Event(), asyncio.Event()
    stalled = asyncio.create_task(_read(deadlines, stall))
    prompt = asyncio.create_task(_read(deadlines, soon))
    await asyncio.sleep(0.05)
    soon.set()
    assert await prompt == "read"
    assert await asyncio.wait_for(stalled, 5) == "cut"
