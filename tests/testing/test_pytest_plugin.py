"""The ``whizrouter`` pytest plugin is registered and its fixtures work together."""

from __future__ import annotations

import pytest

from whizrouter.client import WhizardClient
from whizrouter.testing import FakeProvider


def test_the_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("whizrouter")


async def test_the_plugin_fixtures(
    fake_provider: FakeProvider, whizard_client: WhizardClient
) -> None:
    assert whizard_client.base_url == fake_provider.base_url
    assert whizard_client.shape == fake_provider.shape == "onprem"
    message_id = await whizard_client.send_text("15551230001", "from the fixture")
    [sent] = await fake_provider.wait_for(lambda c: c.kind == "send")
    assert sent.message_id == message_id
