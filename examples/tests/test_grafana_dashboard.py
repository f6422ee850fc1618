"""The example Grafana dashboard only queries metrics a running bot exposes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.testing import FakeProvider, text_callback

DASHBOARD = Path(__file__).resolve().parent.parent / "grafana-dashboard.json"


async def test_every_metric_the_dashboard_queries_is_exposed(
    aiohttp_client: Callable[..., Any],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(whizrouter_[a-z_]+)\b", target["expr"])
    }
    assert len(dashboard["panels"]) >= 8 and "whizrouter_dead_letters" in queried

    async with FakeProvider() as provider:
        app = WhizRouter(inbox="memory", api_key=provider.api_key, base_url=provider.base_url)

        @app.on_message()
        async def reply(message: TextMessage, ctx: Context) -> None:
            await ctx.reply("hi")

        client = await aiohttp_client(app.make_web_app())
        assert (await client.post("/webhook", json=text_callback("hello"))).status == 200
        await provider.wait_for(1)
        await app.dispatcher.wait_idle()  # type: ignore[union-attr]
        scraped = await (await client.get("/metrics")).text()
        exposed = {
            sample.name
            for family in text_string_to_metric_families(scraped)
            for sample in family.samples
        }
        await client.close()
    assert queried <= exposed, queried - exposed
