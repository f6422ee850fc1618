"""Parsing part by part: odd items become an ``UnknownMessage`` or a ``Status`` that says
what did not validate, malformed envelope parts are left out, and nothing raises but a
message without an id."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.events.samples import BASE, message, status
from whizrouter.events import TextMessage, UnknownMessage


@pytest.mark.parametrize(
    ("wire_type", "reason"),
    [
        ("unknown", "unsupported"),
        ("unsupported", "unsupported"),
        ("ephemeral", "unsupported"),
        ("edit", "unmodelled"),
        ("revoke", "unmodelled"),
        ("request_welcome", "unmodelled"),
        ("hologram", "unmodelled"),
    ],
)
def test_types_without_a_class(wire_type: str, reason: str) -> None:
    msg = message({**BASE, "type": wire_type, wire_type: {"x": 1}})
    assert isinstance(msg, UnknownMessage)
    assert msg.type == wire_type
    assert msg.reason == reason
    assert msg.raw[wire_type] == {"x": 1}
    assert msg.model_dump()[wire_type]["x"] == 1


def test_text_that_is_a_number_falls_back() -> None:
    msg = message({**BASE, "type": "text", "text": 42, "note": "kept"})
    assert isinstance(msg, UnknownMessage)
    assert msg.type == "text"
    assert msg.reason == "invalid"
    assert msg.validation_error is not None
    assert msg.validation_error.startswith("text:")
    assert msg.raw["text"] == 42
    assert msg.model_extra == {"text": 42, "note": "kept"}


def test_malformed_base_field_still_falls_back() -> None:
    msg = message(
        {"from": "15551230001", "id": "wamid.T2", "type": "hologram", "context": "not an object"}
    )
    assert isinstance(msg, UnknownMessage)
    assert msg.reason == "invalid"
    assert msg.context is None
    assert msg.timestamp == ""
    assert msg.timestamp_dt is None
    assert msg.validation_error is not None
    assert "context" in msg.validation_error
    assert msg.raw["context"] == "not an object"


def test_missing_type() -> None:
    msg = message({**BASE})
    assert isinstance(msg, UnknownMessage)
    assert msg.type == "unknown"
    assert msg.reason == "invalid"


def test_malformed_envelope_parts_do_not_spoil_the_message() -> None:
    msg = message(
        {**BASE, "type": "text", "text": {"body": "hi"}},
        contact={"wa_id": "15551230001", "profile": "oops"},
        business=["x"],
    )
    assert isinstance(msg, TextMessage)
    assert msg.contact is None
    assert msg.business is None


def test_item_without_string_id_raises() -> None:
    with pytest.raises(ValidationError):
        message({"from": "15551230001", "type": "text", "text": {"body": "hi"}})


def test_status_with_malformed_fields_is_kept() -> None:
    item = {
        "id": "wamid.S3",
        "status": "sent",
        "recipient_id": "15551230001",
        "conversation": "not an object",
        "errors": [{"code": "x"}],
    }
    st = status(item)
    assert st.status == "sent"
    assert st.conversation_info is None
    assert st.errors == []
    assert st.timestamp == ""
    assert st.validation_error is not None
    assert "conversation" in st.validation_error
    assert st.raw == item
