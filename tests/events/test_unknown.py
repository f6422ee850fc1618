"""``UnknownMessage``: what the provider cannot render, and types whizrouter does not model."""

from __future__ import annotations

import orjson

from tests.events.samples import FIXTURES, one
from whizrouter.events import UnknownMessage
from whizrouter.payloads import split_callback


def test_onprem_unknown_keeps_its_error() -> None:
    msg = one("onprem/unknown.json", UnknownMessage)
    assert msg.type == "unknown"
    assert msg.reason == "unsupported"
    assert msg.validation_error is None
    (error,) = msg.errors
    assert error.code == 501
    assert error.title == "Unknown message type"
    assert error.details == "Message type is not currently supported"


def test_cloud_unsupported_error_is_normalized() -> None:
    msg = one("cloud/unsupported.json", UnknownMessage)
    assert msg.type == "unsupported"
    assert msg.reason == "unsupported"
    assert msg.unsupported_type == "pool"
    (error,) = msg.errors
    assert error.code == 131051
    assert error.details == "Message type is currently not supported."
    assert error.message == "Message type unknown"
    assert msg.contact is not None
    assert msg.contact.name == "Test Name"


def test_cloud_interactive_without_payload_falls_back() -> None:
    msg = one("cloud/interactive_with_value_errors.json", UnknownMessage)
    assert msg.type == "interactive"
    assert msg.reason == "invalid"
    assert msg.validation_error is not None
    assert "interactive" in msg.validation_error
    assert msg.context is not None
    assert msg.context.id == "wamid.gvwegfretge=="
    assert msg.raw["id"] == "wamid.wegrchytvwcggt="
    assert msg.business is not None
    assert msg.business.phone_number_id == "1122334455667"
    kinds = [
        raw.kind
        for raw in split_callback(
            orjson.loads((FIXTURES / "cloud/interactive_with_value_errors.json").read_bytes())
        )
    ]
    assert kinds == ["message", "raw"]


def test_cloud_edit_is_unmodelled_and_keeps_its_payload() -> None:
    msg = one("cloud/edit.json", UnknownMessage)
    assert msg.type == "edit"
    assert msg.reason == "unmodelled"
    assert msg.raw["edit"]["original_message_id"].startswith("wamid.")
    assert msg.model_extra is not None
    assert msg.model_extra["edit"]["message"]["type"] == "image"
