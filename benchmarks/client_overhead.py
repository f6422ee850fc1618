"""What WhizardClient adds to a bare aiohttp POST.

Starts a :class:`~whizrouter.testing.FakeProvider` on loopback, then times ``--sends`` calls of
``WhizardClient.send_text`` against the same number of bare ``aiohttp.ClientSession.post``
calls of the same JSON bytes with the same ``WHIZARD-KEY`` header (each reading the new message
id from the answer), in alternating rounds so drift hits both alike. Prints the median
microseconds per send of each and their ratio; the target is a ratio within 1.3x.

Run it with::

    python -m benchmarks.client_overhead            # 500 sends x 8 rounds
    python -m benchmarks.client_overhead --smoke    # a few sends: checks that it runs

The fake provider runs in the same process and event loop, so both sides pay for its handler;
the ratio therefore measures the client's overhead on a real loopback round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from whizrouter.backoff import RetryPolicy
from whizrouter.client import KEY_HEADER, WhizardClient
from whizrouter.defaults import ApiShape
from whizrouter.testing import FakeProvider

TO = "4915112345678"
TEXT = "hello from the overhead benchmark"
TARGET = 1.3


async def _client_round(client: WhizardClient, sends: int) -> float:
    start = time.perf_counter()
    for _ in range(sends):
        await client.send_text(TO, TEXT)
    return time.perf_counter() - start


def _wire_body(shape: ApiShape) -> dict[str, Any]:
    """Exactly the body ``send_text(TO, TEXT)`` puts on the wire in ``shape``."""
    if shape == "cloud":
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": TO,
            "type": "text",
            "text": {"body": TEXT, "preview_url": False},
        }
    return {
        "recipient_type": "individual",
        "to": TO,
        "type": "text",
        "text": {"body": TEXT},
        "preview_url": False,
    }


async def _bare_round(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    payload: dict[str, Any],
    sends: int,
) -> float:
    start = time.perf_counter()
    for _ in range(sends):
        # Encoding per send, as any caller must; orjson keeps the bare side as lean as possible.
        async with session.post(url, data=orjson.dumps(payload), headers=headers) as response:
            response.raise_for_status()
            message_id = orjson.loads(await response.read())["messages"][0]["id"]
            assert isinstance(message_id, str)
    return time.perf_counter() - start


async def run(sends: int, rounds: int, shape: str) -> tuple[float, float]:
    """Time both sides and return their median microseconds per send (client, bare)."""
    api_shape: ApiShape = "cloud" if shape == "cloud" else "onprem"
    payload = _wire_body(api_shape)
    async with FakeProvider(shape=api_shape) as fake:
        url = fake.base_url + ("/v1/messages" if api_shape == "onprem" else "/messages")
        headers = {KEY_HEADER: fake.api_key, "Content-Type": "application/json"}
        client = WhizardClient(
            fake.api_key, fake.base_url, api_shape, retry=RetryPolicy(attempts=0)
        )
        async with client, aiohttp.ClientSession() as session:

            async def client_round() -> float:
                fake.reset()  # both sides start with an empty call log
                return await _client_round(client, sends)

            async def bare_round() -> float:
                fake.reset()
                return await _bare_round(session, url, headers, payload, sends)

            # Warm up both: connections, caches, the first-call checks of the client.
            await client_round()
            await bare_round()
            client_times: list[float] = []
            bare_times: list[float] = []
            for index in range(rounds):
                if index % 2 == 0:
                    client_times.append(await client_round())
                    bare_times.append(await bare_round())
                else:
                    bare_times.append(await bare_round())
                    client_times.append(await client_round())
    per_send = 1e6 / sends
    return statistics.median(client_times) * per_send, statistics.median(bare_times) * per_send


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the result; returns the exit code (0 unless it crashed).

    Args:
        argv: command-line arguments (``--sends``, ``--rounds``, ``--shape``, ``--smoke``).
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.client_overhead")
    parser.add_argument("--sends", type=int, default=500, help="sends per round (default 500)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds per side (default 8)")
    parser.add_argument("--shape", choices=("onprem", "cloud"), default="onprem")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks it works")
    args = parser.parse_args(argv)
    sends, rounds = (5, 2) if args.smoke else (max(args.sends, 1), max(args.rounds, 1))
    client_us, bare_us = asyncio.run(run(sends, rounds, args.shape))
    ratio = client_us / bare_us
    verdict = "within" if ratio <= TARGET else "ABOVE"
    print(f"client overhead: {sends} sends x {rounds} rounds per side, {args.shape} shape")
    print(f"  WhizardClient.send_text  {client_us:9.1f} us/send")
    print(f"  bare aiohttp post        {bare_us:9.1f} us/send")
    print(f"  ratio                    {ratio:9.2f}x ({verdict} the {TARGET}x target)")
    if args.smoke:
        print("  (smoke run: too short to mean anything)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
