"""A real ``whizrouter run`` process under load, killed with SIGKILL and restarted.

What the provider was told (200) must reach the handlers: 0 lost. Events handled twice may
only be ones in flight at a kill.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.process import BotProcess
from whizrouter.testing import FakeProvider, free_port, text_callback

pytestmark = pytest.mark.slow

KILLS = 3


class Provider:
    """Posts callbacks like the provider does: a non-200 is sent again later."""

    def __init__(self) -> None:
        self.acknowledged: set[str] = set()
        self.bodies: dict[str, dict[str, object]] = {}
        self.unacknowledged: list[tuple[str, dict[str, object]]] = []
        self.sent = 0

    async def post(
        self, session: aiohttp.ClientSession, url: str, message_id: str, body: dict[str, object]
    ) -> None:
        try:
            async with session.post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                if response.status == 200:
                    self.acknowledged.add(message_id)
                    self.bodies[message_id] = body
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        self.unacknowledged.append((message_id, body))

    async def stream(self, url: str, stop: asyncio.Event, *, senders: int, pause: float) -> None:
        """Post fresh callbacks over many conversations until ``stop`` is set."""
        async with aiohttp.ClientSession() as session:

            async def sender(n: int) -> None:
                while not stop.is_set():
                    self.sent += 1
                    message_id = f"wamid.crash-{n}-{self.sent}"
                    body = text_callback(
                        message_id, message_id=message_id, wa_id=f"1555{self.sent % 50:07d}"
                    )
                    await self.post(session, url, message_id, body)
                    await asyncio.sleep(pause)  # the provider's own pace

            await asyncio.gather(*(sender(n) for n in range(senders)))

    async def resend_failed(self, url: str) -> None:
        """Send again whatever was not acknowledged (the provider's retry)."""
        pending, self.unacknowledged = self.unacknowledged, []
        async with aiohttp.ClientSession() as session:
            for message_id, body in pending:
                await self.post(session, url, message_id, body)
        assert not self.unacknowledged, "a resend was refused by a running bot"

    async def resend_acknowledged(self, url: str) -> None:
        """Send every acknowledged callback once more, as a provider retrying a lost 200."""
        async with aiohttp.ClientSession() as session:
            for body in self.bodies.values():
                async with session.post(url, json=body) as response:
                    assert response.status == 200, await response.text()


async def settled_health(url: str) -> dict[str, int]:
    """The bot's health report once nothing is pending or running."""
    async with aiohttp.ClientSession() as session:
        for _ in range(500):
            async with session.get(url + "/healthz") as response:
                report: dict[str, int] = await response.json()
            if report["backlog"] == 0 and report["in_flight"] == 0:
                return report
            await asyncio.sleep(0.02)
    raise AssertionError(f"the bot did not settle: {report}")


def handled_counts(fake: FakeProvider) -> Counter[str]:
    counts: Counter[str] = Counter()
    for call in fake.sent:
        body = (call.json or {}).get("text", {}).get("body", "")
        if body.startswith("handled "):
            counts[body.split()[1]] += 1
    return counts


async def wait_until_handled(fake: FakeProvider, expected: set[str]) -> None:
    """Wait until every expected message id was handled; fail naming what is missing."""
    while not expected <= set(handled_counts(fake)):
        missing = expected - set(handled_counts(fake))
        try:
            await fake.wait_for(lambda c: c.kind == "send", count=len(fake.sent) + 1, timeout=15)
        except AssertionError:
            raise AssertionError(f"lost {len(missing)} acknowledged events") from None


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("work_seconds", "concurrency", "senders", "pause", "kill_after", "inbox_options"),
    # The fast handler's inbox merges its dedupe keys every 25, so kills land mid-merge.
    [(0.0, 4, 4, 0.002, 300, "?recent_keys=25"), (0.2, 16, 2, 0.05, 40, "")],
    ids=["fast-handler", "slow-handler"],
)
async def test_sigkill_loses_nothing_that_was_acknowledged(
    tmp_path: Path,
    work_seconds: float,
    concurrency: int,
    senders: int,
    pause: float,
    kill_after: int,
    inbox_options: str,
) -> None:
    async with FakeProvider() as fake:
        env = {
            "WHIZARD_API_KEY": fake.api_key,
            "WHIZARD_BASE_URL": fake.base_url,
            "WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}{inbox_options}",
            "WHIZROUTER_CONCURRENCY": str(concurrency),
            "CRASH_BOT_WORK_SECONDS": str(work_seconds),
        }
        provider = Provider()
        port = free_port()
        for _ in range(KILLS):
            bot = BotProcess("tests.bots.crash_bot:app", env, port=port)
            await bot.start()
            await provider.resend_failed(bot.url + "/webhook")
            stop = asyncio.Event()
            load = asyncio.create_task(
                provider.stream(bot.url + "/webhook", stop, senders=senders, pause=pause)
            )
            # Kill once handlers have been busy for a while (replies are arriving).
            await fake.wait_for(
                lambda c: c.kind == "send", count=len(fake.sent) + kill_after, timeout=30
            )
            bot.signal(signal.SIGKILL)
            await bot.wait()
            stop.set()
            await load
        bot = BotProcess("tests.bots.crash_bot:app", env, port=port)
        await bot.start()
        try:
            await provider.resend_failed(bot.url + "/webhook")
            await wait_until_handled(fake, provider.acknowledged)
            # Redeliveries of everything acknowledged, across the kills: none is handled.
            handled = (await settled_health(bot.url))["handled"]
            await provider.resend_acknowledged(bot.url + "/webhook")
            assert (await settled_health(bot.url))["handled"] == handled
        finally:
            output = await bot.stop()
        counts = handled_counts(fake)
        twice = [mid for mid, n in counts.items() if n > 1]
        assert len(provider.acknowledged) > 60, output
        assert provider.acknowledged <= set(counts)
        assert len(twice) <= KILLS * concurrency, (len(twice), output)
