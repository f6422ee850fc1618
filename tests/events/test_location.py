"""Location messages."""

from __future__ import annotations

import pytest

from tests.events.samples import one
from whizrouter.events import LocationMessage


def test_location() -> None:
    msg = one("onprem/location.json", LocationMessage)
    assert msg.location.latitude == pytest.approx(45.4641943)
    assert msg.location.longitude == pytest.approx(9.1896346)
    assert msg.location.name == "Duomo di Milano"
