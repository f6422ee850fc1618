"""Sample events for the event tests: the fixtures split and decoded as the app does them, and
hand-made items parsed as stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import orjson

from whizrouter.events import Message, Status
from whizrouter.payloads import split_callback
from whizrouter.stored_body import decode_message, decode_status, parse_message, parse_status

FIXTURES = Path(__file__).parent.parent / "fixtures"
T = TypeVar("T")


def events(name: str) -> list[Message | Status]:
    """Split a fixture as the receiver does, then decode each event as the dispatcher does."""
    out: list[Message | Status] = []
    for raw in split_callback(orjson.loads((FIXTURES / name).read_bytes())):
        if raw.kind == "message":
            out.append(decode_message(raw.body))
        elif raw.kind == "status":
            out.append(decode_status(raw.body))
    return out


def one(name: str, cls: type[T]) -> T:
    """The only event of a fixture, checked to be a ``cls``."""
    (event,) = events(name)
    assert isinstance(event, cls), f"{name}: {type(event).__name__}"
    return event


def message(item: dict[str, Any], **added: Any) -> Message:
    """Parse a hand-made message item, stored on-premises unless ``added`` says otherwise."""
    return parse_message({**item, "shape": "onprem", "business": None, "contact": None, **added})


def status(item: dict[str, Any]) -> Status:
    """Parse a hand-made status item, stored on-premises."""
    return parse_status({**item, "shape": "onprem", "business": None})


BASE = {"from": "15551230001", "id": "wamid.T1", "timestamp": "1718000001"}
STATUS = {
    "id": "wamid.S1",
    "status": "delivered",
    "timestamp": "1718000002",
    "recipient_id": "1555",
}
