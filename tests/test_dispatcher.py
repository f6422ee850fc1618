"""Ordering, concurrency, failure isolation, retries, dead letters and draining."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BotClient, Recorder, fixture_bytes
from whizrouter import (
    ConfigurationError,
    Context,
    InboxUnavailableError,
    Message,
    ProviderError,
    RateLimited,
    RetryPolicy,
    TextMessage,
    WhizRouter,
)
from whizrouter.inbox.base import RawEvent, StoredEvent
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.payloads import split_callback
from whizrouter.stored_body import decode_event
from whizrouter.testing import text_callback

Serve = Callable[[WhizRouter], Awaitable[BotClient]]
MakeApp = Callable[..., WhizRouter]
FAST_RETRY = RetryPolicy(attempts=2, base=0.01, factor=1.0, max_delay=0.01, max_total=1.0)


async def post_texts(client: BotClient, wa_id: str, texts: list[str]) -> None:
    for text in texts:
        response = await client.post("/webhook", json=text_callback(text, wa_id=wa_id))
        assert response.status == 200


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


class CountRecordingInbox(SqliteInbox):
    """A sqlite inbox that notes each counted run in ``steps``."""

    def __init__(self, path: Path, steps: list[str]) -> None:
        super().__init__(path)
        self.steps = steps

    async def count_run(self, seq: int) -> None:
        self.steps.append("count")
        await super().count_run(seq)


async def test_events_held_at_a_crash_are_counted_and_started_one_at_a_time(
    make_app: MakeApp, tmp_path: Path
) -> None:
    # Events the crashed process held may have run, so each next run is counted before it
    # starts. Counted all at once, a handler that kills the process as it starts would leave
    # the others counted without having run; so each is counted only once the one counted
    # before it has started.
    path = tmp_path / "inbox.db"
    await crashed_inbox(path, 3)

    steps: list[str] = []
    app = make_app(concurrency=4, inbox=CountRecordingInbox(path, steps))
    all_started = asyncio.Event()

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        steps.append("start")
        if steps.count("start") == 3:
            all_started.set()
        await all_started.wait()  # the three still run at the same time

    async with app:
        assert app.dispatcher is not None
        await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert steps == ["count", "start"] * 3


async def crashed_inbox(path: Path, count: int) -> None:
    """Leave ``count`` text events in a sqlite inbox as a crash leaves them: claimed."""
    crashed = SqliteInbox(path)
    await crashed.open()
    for n in range(count):
        await crashed.append(split_callback(text_callback("hi", wa_id=f"1555000000{n}")))
    assert len(await crashed.claim(10)) == count
    await crashed.close()  # without handing them back


async def test_a_waiting_before_handle_hook_still_holds_back_the_next_count(
    make_app: MakeApp, tmp_path: Path
) -> None:
    # mark-read's when="before" calls the provider before the handler starts: the next
    # counted event waits for the handler itself, not for the hook's first wait.
    steps: list[str] = []

    class SlowBeforeHook:
        async def before_handle(self, event: Any, ctx: Context) -> None:
            steps.append("hook")
            for _ in range(5):
                await asyncio.sleep(0)  # as a request to the provider would, several times

    await crashed_inbox(tmp_path / "inbox.db", 3)
    app = make_app(
        concurrency=4,
        inbox=CountRecordingInbox(tmp_path / "inbox.db", steps),
        plugins=[SlowBeforeHook()],
    )

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        steps.append("start")
        await asyncio.sleep(0)

    async with app:
        assert app.dispatcher is not None
        await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert steps == ["count", "hook", "start"] * 3


async def test_counted_events_waiting_their_turn_at_a_stop_stay_uncounted(
    make_app: MakeApp, tmp_path: Path
) -> None:
    path = tmp_path / "inbox.db"
    await crashed_inbox(path, 3)
    steps: list[str] = []
    in_hook = asyncio.Event()
    leave_hook = asyncio.Event()

    class BlockingBeforeHook:
        async def before_handle(self, event: Any, ctx: Context) -> None:
            in_hook.set()
            await leave_hook.wait()

    app = make_app(
        concurrency=4, inbox=CountRecordingInbox(path, steps), plugins=[BlockingBeforeHook()]
    )

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        steps.append("start")

    await app.start()
    await asyncio.wait_for(in_hook.wait(), timeout=5)  # one counted; two wait their turn
    stopping = asyncio.create_task(app.stop())
    await asyncio.sleep(0)  # stop() begins: the dispatcher is told to stop
    leave_hook.set()
    await asyncio.wait_for(stopping, timeout=5)
    assert steps == ["count", "start"]  # the two waiting were neither counted nor started

    reopened = SqliteInbox(path)
    await reopened.open()
    try:
        left = await reopened.claim(10)
    finally:
        await reopened.close()
    assert len(left) == 2
    assert [(event.attempts, event.maybe_ran) for event in left] == [(0, False), (0, False)]


class AttemptRecordingInbox(SqliteInbox):
    """A sqlite inbox that says when a failed attempt has been recorded."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.recorded = asyncio.Event()

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        await super().record_attempt(seq, attempts, error)
        self.recorded.set()


async def test_an_event_waiting_for_its_retry_at_a_stop_keeps_its_recorded_attempts(
    make_app: MakeApp, tmp_path: Path
) -> None:
    path = tmp_path / "inbox.db"
    inbox = AttemptRecordingInbox(path)
    app = make_app(
        inbox=inbox,
        retry=RetryPolicy(attempts=5, base=60.0, factor=1.0, max_delay=60.0, max_total=600.0),
    )

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        raise RuntimeError("down for now")

    await app.start()
    await inbox.append(split_callback(text_callback("hi")))
    await asyncio.wait_for(inbox.recorded.wait(), timeout=5)
    await asyncio.wait_for(app.stop(), timeout=5)  # the 60 s pause ends at the stop

    reopened = SqliteInbox(path)
    await reopened.open()
    try:
        [left] = await reopened.claim(10)
    finally:
        await reopened.close()
    # One run, which failed and was recorded; the stop counts nothing more.
    assert (left.attempts, left.maybe_ran) == (1, False)


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


async def test_failing_handler_is_retried_then_dead_lettered_without_stopping_others(
    make_app: MakeApp, serve: Serve, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[tuple[str, int]] = []

    class ErrorHook:
        async def on_error(self, event: Any, ctx: Context, exc: BaseException) -> None:
            errors.append((str(exc), ctx.attempt))

    app = make_app(retry=FAST_RETRY, plugins=[ErrorHook()])
    attempts: list[int] = []

    @app.on_message(text="poison")
    async def poison(message: TextMessage, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("boom")

    @app.on_message()
    async def fine(message: TextMessage, ctx: Context) -> None:
        await recorder.add(message.text.body)

    client = await serve(app)
    with caplog.at_level(logging.WARNING, logger="whizrouter"):
        await post_texts(client, "15550000001", ["poison", "after poison"])
        await post_texts(client, "15550000002", ["other"])
        seen = await recorder.wait_for(2)
    assert sorted(seen) == ["after poison", "other"]
    assert attempts == [1, 2, 3]
    assert errors == [("boom", 1), ("boom", 2), ("boom", 3)]
    [letter] = await app.inbox.dead_letters()
    assert letter.attempts == 3
    assert letter.handler.endswith("poison")
    assert "boom" in letter.error
    [dead] = [r.getMessage() for r in caplog.records if "is dead after" in r.getMessage()]
    assert "is dead after 3 attempts" in dead
    # A memory inbox is out of the CLI's reach: the line says how to see it instead.
    assert "app.inbox.dead_letters()" in dead and "whizrouter dead" not in dead
    assert any(letter.key in r.getMessage() for r in caplog.records if "failed" in r.getMessage())


async def test_replayed_dead_letter_runs_again(
    make_app: MakeApp, serve: Serve, recorder: Recorder
) -> None:
    app = make_app(retry=RetryPolicy(attempts=0))
    broken = True

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        if broken:
            raise ValueError("not yet")
        await recorder.add((message.text.body, ctx.attempt))

    client = await serve(app)
    await post_texts(client, "15550000001", ["again"])
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    [letter] = await app.inbox.dead_letters()
    broken = False
    assert await app.inbox.replay([letter.seq]) == 1
    assert await recorder.wait_for(1) == [("again", 1)]


async def test_per_handler_retry_policy_wins(make_app: MakeApp, serve: Serve) -> None:
    app = make_app(retry=FAST_RETRY)
    attempts: list[int] = []
    done = asyncio.Event()

    @app.on_message(retry=RetryPolicy(attempts=0))
    async def once(message: Message, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        done.set()
        raise RuntimeError("no retry")

    client = await serve(app)
    await post_texts(client, "15550000001", ["x"])
    await asyncio.wait_for(done.wait(), timeout=5)
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert attempts == [1]
    assert len(await app.inbox.dead_letters()) == 1


async def test_unhandled_events_are_settled(make_app: MakeApp, serve: Serve) -> None:
    app = make_app()

    @app.on_message(type="image")
    async def on_image(message: Message, ctx: Context) -> None:
        raise AssertionError("a text is no image")

    client = await serve(app)
    await post_texts(client, "15550000001", ["nobody listens"])
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert app.inbox.backlog() == 0
    assert app.dispatcher is not None and app.dispatcher.unhandled == 1


async def test_events_of_a_kind_without_handlers_are_settled_without_decoding(
    make_app: MakeApp, serve: Serve, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []

    def counting_decode(stored: StoredEvent) -> tuple[Any, Any]:
        decoded.append(stored.kind)
        return decode_event(stored)

    # The app hands this module-level function to its dispatcher at start.
    monkeypatch.setattr("whizrouter.app.decode_event", counting_decode)
    app = make_app()

    @app.on_message()
    async def on_message(message: TextMessage, ctx: Context) -> None:
        await recorder.add(message.text.body)

    client = await serve(app)
    # Stored as a receiver process would store them for its workers (this app's own receiver
    # would not store statuses at all: see tests/test_receiver.py).
    for name in ("status_sent.json", "status_delivered.json", "status_read.json"):
        assert await app.feed(fixture_bytes("onprem/" + name)) == 1
    await post_texts(client, "15550000001", ["wanted"])
    assert await recorder.wait_for(1) == ["wanted"]
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert decoded == ["message"]  # no status handler: no typed status built
    assert app.dispatcher.unhandled == 3
    assert app.inbox.backlog() == 0


async def test_stop_drains_running_handlers(make_app: MakeApp) -> None:
    app = make_app(shutdown_grace=5.0)
    started = asyncio.Event()
    finished: list[str] = []

    @app.on_message()
    async def slow(message: TextMessage, ctx: Context) -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.append(message.text.body)

    async with app:
        await app.feed(text_callback("in flight"))
        await asyncio.wait_for(started.wait(), timeout=5)
    assert finished == ["in flight"]


async def test_stop_cancels_handlers_after_the_grace_period(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(shutdown_grace=0.1)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @app.on_message()
    async def forever(message: Message, ctx: Context) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with caplog.at_level(logging.WARNING, logger="whizrouter"):
        async with app:
            await app.feed(text_callback("stuck", message_id="wamid.stuck-1"))
            await asyncio.wait_for(started.wait(), timeout=5)
    assert cancelled.is_set()
    [warning] = [r.getMessage() for r in caplog.records if "grace period" in r.getMessage()]
    # Which events were cut short, and what becomes of them.
    assert "cancelling 1: m:wamid.stuck-1 in " in warning and "forever" in warning
    assert "the memory inbox loses them" in warning


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError("no provider API key: set WHIZARD_API_KEY"),
        ProviderError(400, "Parameter value is not valid", code=131009),
    ],
    ids=["missing-setting", "invalid-parameter"],
)
async def test_errors_that_cannot_heal_are_dead_lettered_at_once(
    make_app: MakeApp, serve: Serve, error: Exception
) -> None:
    app = make_app(retry=FAST_RETRY)
    attempts: list[int] = []

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        raise error

    client = await serve(app)
    await post_texts(client, "15550000001", ["x"])
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    [letter] = await app.inbox.dead_letters()
    assert attempts == [1]
    assert str(error) in letter.error


async def test_a_transient_provider_error_is_retried(make_app: MakeApp, serve: Serve) -> None:
    app = make_app(retry=FAST_RETRY)
    attempts: list[int] = []

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ProviderError(503, "restarting", retryable=True)

    client = await serve(app)
    await post_texts(client, "15550000001", ["x"])
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert attempts == [1, 2]
    assert await app.inbox.dead_letters() == []


async def test_a_rate_limit_s_retry_after_is_waited_in_full(
    make_app: MakeApp, serve: Serve
) -> None:
    # The policy's own delays are 10 ms; the provider asks for 0.3 s, then for more than
    # the policy's 1 s in all allows.
    app = make_app(retry=RetryPolicy(attempts=5, base=0.01, max_delay=0.01, max_total=1.0))
    runs: list[float] = []

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        runs.append(time.monotonic())
        raise RateLimited(429, "slow down", retry_after=0.3 if ctx.attempt == 1 else 5.0)

    client = await serve(app)
    await post_texts(client, "15550000001", ["x"])
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    assert len(runs) == 2
    assert runs[1] - runs[0] >= 0.3
    [letter] = await app.inbox.dead_letters()
    assert "slow down" in letter.error


async def test_an_event_that_cannot_be_decoded_is_dead_lettered_saying_why(
    make_app: MakeApp,
) -> None:
    app = make_app()

    @app.on_message()
    async def handler(message: Message, ctx: Context) -> None:
        raise AssertionError("never reached")

    async with app:
        assert app.dispatcher is not None
        broken = RawEvent("message", "m:wamid.BROKEN", "15550000001", b"[5]")
        await app.inbox.append([broken])
        await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
        [letter] = await app.inbox.dead_letters()
    assert (letter.key, letter.handler, letter.attempts) == ("m:wamid.BROKEN", "<decode>", 1)
    assert letter.error == "could not decode event: stored body is not a JSON object (got list)"


class FlakyClaimInbox(MemoryInbox):
    """A memory inbox whose first claims fail as a full disk would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def claim(self, limit: int) -> list[StoredEvent]:
        if self.failures:
            self.failures -= 1
            raise InboxUnavailableError("cannot write: database or disk is full; free disk space")
        return await super().claim(limit)


async def test_the_dispatcher_waits_out_a_storage_failure_and_goes_on(
    make_app: MakeApp, serve: Serve, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = FlakyClaimInbox(failures=3)
    app = make_app(inbox=inbox)

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        await recorder.add(message.text.body)

    client = await serve(app)
    await post_texts(client, "15550000001", ["one", "two"])
    assert await recorder.wait_for(2) == ["one", "two"]
    assert inbox.failures == 0 and app.failure is None
    [logged] = [r for r in caplog.records if "cannot hand out events now" in r.getMessage()]
    assert "free disk space" in logged.getMessage()


@pytest.mark.parametrize(
    ("failure", "traceback"),
    [
        (ProviderError(401, "invalid key; check WHIZARD_API_KEY"), False),
        (ConfigurationError("no API key: set WHIZARD_API_KEY"), False),
        (AttributeError("'TextMessage' object has no attribute 'nope'"), True),
    ],
)
async def test_a_give_up_logs_a_traceback_only_for_errors_that_do_not_explain_themselves(
    make_app: MakeApp,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    failure: Exception,
    traceback: bool,
) -> None:
    app = make_app(retry=RetryPolicy(attempts=0))

    @app.on_message()
    async def handler(message: TextMessage, ctx: Context) -> None:
        raise failure

    client = await serve(app)
    await post_texts(client, "15550000001", ["hi"])
    assert app.dispatcher is not None
    await asyncio.wait_for(app.dispatcher.wait_idle(), timeout=5)
    [logged] = [r for r in caplog.records if "failed on event" in r.getMessage()]
    assert logged.levelno == logging.ERROR and str(failure) in logged.getMessage()
    assert (logged.exc_info is not None) is traceback
