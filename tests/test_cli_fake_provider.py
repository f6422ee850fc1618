"""``whizrouter fake-provider`` as a real process: it answers like the API, prints each call,
and takes its failure injection over HTTP."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.process import CommandProcess
from whizrouter import WhizardClient
from whizrouter.testing import TEST_RETRY, FakeProvider, free_port


@pytest.mark.slow
async def test_failure_injection_over_http() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    fake = CommandProcess(
        "fake-provider", "--port", str(port), "--shape", "cloud", "--key", "k-9", env={}
    )
    await fake.start()
    try:
        await fake.wait_for_line("fake provider (cloud shape) on " + base)
        async with (
            aiohttp.ClientSession(base_url=base) as control,
            WhizardClient("k-9", base, "cloud", retry=TEST_RETRY) as client,
        ):
            async with control.post(
                "/_fake/fail", json={"status": 503, "times": 2, "path": "/messages"}
            ) as answer:
                assert answer.status == 200
            # Two 503s, then the send goes through: the client's retries met the injection.
            message_id = await client.send_text("15551230001", "hello")
            assert message_id == "wamid.fake-1"
            async with control.post("/_fake/drop", json={}) as answer:
                assert answer.status == 200
            await client.mark_read("wamid.IN1")  # dropped once, then retried
            async with control.get("/_fake/calls") as answer:
                calls = await answer.json()
            assert [(c["kind"], c["status"]) for c in calls] == [
                ("send", 503),
                ("send", 503),
                ("send", 200),
                ("mark_read", 200),
                ("mark_read", 200),
            ]
            async with control.get("/_fake/calls", params={"kind": "send"}) as answer:
                assert len(await answer.json()) == 3
            async with control.post("/_fake/fail", json={"times": 1}) as answer:
                assert answer.status == 400
                assert "'status' must be a number" in await answer.text()
            async with control.post("/_fake/reset") as answer:
                assert answer.status == 200
            async with control.get("/_fake/calls") as answer:
                assert await answer.json() == []
        await fake.wait_for_line("[call] send text to 15551230001: 'hello' -> wamid.fake-1")
        assert "[call] send text to 15551230001: 'hello' (answered 503)" in fake.output
        assert "[call] mark read wamid.IN1" in fake.output
    finally:
        code = await fake.stop()
    assert code == 0, fake.output


async def test_delay_over_http_holds_the_answer() -> None:
    from whizrouter.cli_fake_provider import control_routes

    holder: list[FakeProvider] = []
    async with FakeProvider(routes=control_routes(lambda: holder[0])) as fake:
        holder.append(fake)
        async with aiohttp.ClientSession(base_url=fake.base_url) as session:
            async with session.post("/_fake/delay", json={"seconds": 5, "times": 1}) as answer:
                assert answer.status == 200
            client = fake.client(timeout=0.2, retry=TEST_RETRY)
            async with client:
                loop = asyncio.get_running_loop()
                started = loop.time()
                await client.send_text("15551230001", "late")  # one timeout, then a retry
                assert loop.time() - started >= 0.2
            assert [call.kind for call in fake.calls] == ["send", "send"]
