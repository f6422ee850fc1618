"""The benchmarked callbacks: real fixture bodies with a fresh message id in every request.

The receiver drops redeliveries, so a fixed body would measure a dedupe lookup and nothing
else. Each scenario is therefore a template cut out of a real callback from
``tests/fixtures``: the literal JSON text with holes for the message (or status) ids and the
sender (or recipient) numbers. Request number ``n`` fills hole ``i`` with the id
``wamid.bench.<nonce>.<n>.<i>`` and the number ``CONVERSATION_BASE + (n * slots + i) %
conversations``, so ids never repeat and requests spread over ``conversations`` chats.

The same template renders in Python (``Scenario.render``, for the built-in load generator and
the dispatch benchmark) and in the wrk Lua script (``benchmarks.load.wrk_script``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from whizrouter.payloads import split_callback

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

#: How many conversations the requests of one run spread over.
CONVERSATIONS = 1000
#: The first sender number; request numbers add to it (an 11-digit wa_id).
CONVERSATION_BASE = 15_550_000_000

_HOLE = re.compile(r"@@(ID|FROM)(\d+)@@")


def _id_hole(slot: int) -> str:
    return f"@@ID{slot}@@"


def _from_hole(slot: int) -> str:
    return f"@@FROM{slot}@@"


@dataclass(frozen=True, slots=True)
class Hole:
    """A place in a template that each request fills.

    Attributes:
        field: ``ID`` (a fresh message or status id) or ``FROM`` (a conversation's number).
        slot: which event of the callback the value belongs to (0-based).
    """

    field: str
    slot: int


@dataclass(frozen=True, slots=True)
class Scenario:
    """One kind of callback to post.

    Attributes:
        name: the short name used on the command line and in the JSON results.
        title: what the callback is, for the table.
        fixture: the fixture file the template was cut from.
        pieces: literal JSON text and ``Hole`` values, in order.
        slots: how many events (and fresh ids) one request carries.
    """

    name: str
    title: str
    fixture: str
    pieces: tuple[str | Hole, ...]
    slots: int

    @property
    def events_per_request(self) -> int:
        """Events the receiver splits one request into (each reaches a handler)."""
        return self.slots

    def handler_runs_per_request(self, kinds: Sequence[str]) -> int:
        """Events of one request that a bot whose handlers take ``kinds`` handles."""
        events = split_callback(orjson.loads(self.render("count", 1)))
        return sum(1 for event in events if event.kind in kinds)

    def message_id(self, nonce: str, number: int, slot: int) -> str:
        """The id hole ``slot`` of request ``number`` gets.

        The request number comes first with its digits reversed, so that ids follow each
        other in no particular order, as provider ids do: counting ids would all land at the
        end of the inbox's dedupe index, which real traffic never does.
        """
        return f"wamid.{str(number)[::-1]}.{slot}.bench.{nonce}.{number}"

    def sender(self, number: int, slot: int, conversations: int = CONVERSATIONS) -> str:
        """The number hole ``slot`` of request ``number`` gets."""
        return str(CONVERSATION_BASE + (number * self.slots + slot) % conversations)

    def render(self, nonce: str, number: int, conversations: int = CONVERSATIONS) -> bytes:
        """The body of request ``number`` (1-based) of a run labelled ``nonce``."""
        parts: list[str] = []
        for piece in self.pieces:
            if isinstance(piece, str):
                parts.append(piece)
            elif piece.field == "ID":
                parts.append(self.message_id(nonce, number, piece.slot))
            else:
                parts.append(self.sender(number, piece.slot, conversations))
        return "".join(parts).encode()


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((FIXTURES / name).read_bytes())
    return data


def _template(
    name: str, title: str, fixture: str, slots: int, fill: Callable[[dict[str, Any]], None]
) -> Scenario:
    payload = _load(fixture)
    fill(payload)
    text = orjson.dumps(payload).decode()
    pieces: list[str | Hole] = []
    position = 0
    for match in _HOLE.finditer(text):
        pieces.append(text[position : match.start()])
        pieces.append(Hole(match.group(1), int(match.group(2))))
        position = match.end()
    pieces.append(text[position:])
    return Scenario(name, title, fixture, tuple(pieces), slots)


def _onprem_one(payload: dict[str, Any]) -> None:
    payload["contacts"][0]["wa_id"] = _from_hole(0)
    payload["messages"][0]["id"] = _id_hole(0)
    payload["messages"][0]["from"] = _from_hole(0)


def _cloud_one(payload: dict[str, Any]) -> None:
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = _from_hole(0)
    value["messages"][0]["id"] = _id_hole(0)
    value["messages"][0]["from"] = _from_hole(0)


def _onprem_batch(payload: dict[str, Any], size: int = 10) -> None:
    contact, message = payload["contacts"][0], payload["messages"][0]
    contacts, messages = [], []
    for slot in range(size):
        entry = copy.deepcopy(contact)
        entry["wa_id"] = _from_hole(slot)
        contacts.append(entry)
        item = copy.deepcopy(message)
        item["id"] = _id_hole(slot)
        item["from"] = _from_hole(slot)
        item["text"]["body"] = f"Message {slot + 1} of {size} in one callback"
        messages.append(item)
    payload["contacts"], payload["messages"] = contacts, messages


def _onprem_statuses(payload: dict[str, Any]) -> None:
    status = payload["statuses"][0]
    statuses = []
    for slot, state in enumerate(("sent", "delivered", "read")):
        item = copy.deepcopy(status)
        item["id"] = _id_hole(slot)
        item["recipient_id"] = _from_hole(slot)
        item["status"] = state
        if state != "sent":
            # Only the first status of a conversation window carries its pricing details.
            item.pop("conversation", None)
            item.pop("pricing", None)
        statuses.append(item)
    payload["statuses"] = statuses


def build_scenarios() -> dict[str, Scenario]:
    """Every scenario, by name, in the order the table lists them."""
    scenarios = (
        _template(
            "onprem", "one text message, on-premises callback", "onprem/text.json", 1, _onprem_one
        ),
        _template(
            "cloud", "one text message, Cloud API envelope", "cloud/text.json", 1, _cloud_one
        ),
        _template(
            "batch",
            "10 messages in one on-premises callback",
            "onprem/text.json",
            10,
            _onprem_batch,
        ),
        _template(
            "statuses",
            "3 statuses (sent, delivered, read), on-premises",
            "onprem/status_sent.json",
            3,
            _onprem_statuses,
        ),
    )
    return {scenario.name: scenario for scenario in scenarios}
