"""The callback builders: bodies of either shape, fresh ids, split into the expected events."""

from __future__ import annotations

from typing import Any

import pytest

from whizrouter.payloads import split_callback
from whizrouter.testing import (
    DEFAULT_WA_ID,
    fresh_message_id,
    message_callback,
    status_callback,
    text_callback,
)


def test_text_callback_onprem() -> None:
    body = text_callback("hi", message_id="wamid.A", timestamp="1718000001")
    assert body == {
        "contacts": [{"profile": {"name": "Test User"}, "wa_id": DEFAULT_WA_ID}],
        "messages": [
            {
                "from": DEFAULT_WA_ID,
                "id": "wamid.A",
                "timestamp": "1718000001",
                "type": "text",
                "text": {"body": "hi"},
            }
        ],
    }


def test_text_callback_cloud() -> None:
    body = text_callback("hi", wa_id="15550000002", name="Ana", shape="cloud")
    assert body["object"] == "whatsapp_business_account"
    [entry] = body["entry"]
    [change] = entry["changes"]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert set(value["metadata"]) == {"display_phone_number", "phone_number_id"}
    assert value["contacts"] == [{"profile": {"name": "Ana"}, "wa_id": "15550000002"}]
    [message] = value["messages"]
    assert (message["from"], message["type"], message["text"]) == (
        "15550000002",
        "text",
        {"body": "hi"},
    )
    assert message["id"].startswith("wamid.")
    assert message["timestamp"].isdigit()


def test_builders_make_fresh_ids() -> None:
    ids = {text_callback("x")["messages"][0]["id"] for _ in range(50)}
    assert len(ids) == 50
    assert fresh_message_id() != fresh_message_id()


def test_message_callback_is_generic() -> None:
    reply = {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}
    body = message_callback(
        "interactive", reply, context={"from": "15550009999", "id": "wamid.OURS"}
    )
    [message] = body["messages"]
    assert message["interactive"] == reply
    assert message["context"] == {"from": "15550009999", "id": "wamid.OURS"}
    system = message_callback("unknown", None, name=None)
    assert "contacts" not in system
    assert "unknown" not in system["messages"][0]


@pytest.mark.parametrize("shape", ["onprem", "cloud"])
def test_status_callback(shape: Any) -> None:
    body = status_callback("wamid.OURS", "delivered", shape=shape, timestamp="1718000009")
    item = {
        "id": "wamid.OURS",
        "status": "delivered",
        "timestamp": "1718000009",
        "recipient_id": DEFAULT_WA_ID,
    }
    statuses = (
        body["statuses"]
        if shape == "onprem"
        else body["entry"][0]["changes"][0]["value"]["statuses"]
    )
    assert statuses == [item]
    failed = status_callback("wamid.OURS", "failed", shape=shape)
    value = failed if shape == "onprem" else failed["entry"][0]["changes"][0]["value"]
    assert value["statuses"][0]["errors"][0]["code"] == (470 if shape == "onprem" else 131047)


@pytest.mark.parametrize("shape", ["onprem", "cloud"])
def test_builders_split_into_the_expected_events(shape: Any) -> None:
    text = split_callback(text_callback("hi", message_id="wamid.T", shape=shape))
    assert [(e.kind, e.key, e.conversation) for e in text] == [
        ("message", "m:wamid.T", DEFAULT_WA_ID)
    ]
    status = split_callback(status_callback("wamid.S", "read", shape=shape))
    assert [(e.kind, e.key) for e in status] == [("status", "s:wamid.S:read")]


@pytest.mark.parametrize("shape", ["onprem", "cloud"])
def test_builders_name_the_receiving_number_in_cloud(shape: Any) -> None:
    for body in (
        text_callback("hi", shape=shape, phone_number_id="222"),
        message_callback("image", {"id": "m1"}, shape=shape, phone_number_id="222"),
        status_callback("wamid.x", "sent", shape=shape, phone_number_id="222"),
    ):
        if shape == "cloud":
            assert body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] == "222"
        else:
            assert "222" not in str(body)  # on-premises, the path names the number
