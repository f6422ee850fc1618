"""Location messages: a pin the user dropped."""

from __future__ import annotations

from typing import Literal

from whizrouter.events.message import Message
from whizrouter.events.wire import WireModel


class Location(WireModel):
    """A location pin: ``latitude`` and ``longitude`` in degrees, optional ``name``, ``address``."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class LocationMessage(Message):
    """A location pin in ``location``."""

    type: Literal["location"]
    location: Location
