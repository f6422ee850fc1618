"""Statuses in both shapes: values, recipient, billing, errors, group and future values."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.events.samples import one, status
from whizrouter.events import Status
from whizrouter.payloads import split_callback
from whizrouter.stored_body import decode_status, parse_status


@pytest.mark.parametrize(
    ("name", "value", "recipient"),
    [
        ("onprem/status_sent.json", "sent", "15551230001"),
        ("onprem/status_delivered.json", "delivered", "15551230001"),
        ("onprem/status_read.json", "read", "15551230001"),
        ("onprem/status_failed.json", "failed", "15551230002"),
        ("onprem/status_deleted.json", "deleted", "15551230003"),
        ("onprem/status_warning.json", "warning", "15551230004"),
        ("cloud/status_sent.json", "sent", "972987654321"),
        ("cloud/status_read.json", "read", "972987654321"),
        ("cloud/status_failed.json", "failed", "972987654321"),
        ("cloud/status_played.json", "played", "972987654321"),
        ("cloud/status_group_read.json", "read", "fowefinoewcnw"),
        ("cloud/status_sent_pmp.json", "sent", "15551230001"),
    ],
)
def test_status_values(name: str, value: str, recipient: str) -> None:
    st = one(name, Status)
    assert st.status == value
    assert st.recipient_id == recipient
    assert st.conversation == recipient
    assert st.timestamp_dt is not None
    assert st.validation_error is None
    assert st.raw is None


def test_status_sent_conversation_and_pricing() -> None:
    st = one("onprem/status_sent.json", Status)
    assert st.conversation_id == "3f6a1c0e9b8d7e2f4a5b6c7d8e9f0a1b"
    assert st.conversation_info is not None
    assert st.conversation_info.expiration_timestamp == "1718087720"
    assert st.conversation_info.origin is not None
    assert st.conversation_info.origin.type == "service"
    assert st.pricing is not None
    assert (st.pricing.billable, st.pricing.pricing_model, st.pricing.category) == (
        True,
        "CBP",
        "service",
    )
    assert st.model_dump(by_alias=True)["conversation"]["id"] == st.conversation_id


def test_status_delivered_keeps_late_client_extras() -> None:
    st = one("onprem/status_delivered.json", Status)
    assert st.model_extra == {"type": "message", "message": {"recipient_id": "15551230001"}}
    assert st.conversation_info is not None
    assert st.conversation_info.expiration_timestamp is None


def test_status_recipient_falls_back_to_message() -> None:
    st = status(
        {
            "id": "wamid.S1",
            "status": "delivered",
            "timestamp": "1718001322",
            "message": {"recipient_id": "15551230009"},
        }
    )
    assert st.recipient_id == "15551230009"
    assert st.conversation == "15551230009"


@pytest.mark.parametrize(
    ("top", "nested", "recipient"),
    [
        ({}, {"recipient_id": "15551230009"}, "15551230009"),
        ({"recipient_id": None}, {"recipient_id": "15551230009"}, "15551230009"),
        ({"recipient_id": "15551230001"}, {"recipient_id": "15551230009"}, "15551230001"),
        ({}, {"recipient_id": 15551230009}, None),  # not a string: not a recipient
        ({}, {"recipient_id": ["15551230009"]}, None),
        ({}, "15551230009", None),
    ],
)
def test_the_nested_recipient_fallback_is_the_same_on_every_path(
    top: dict[str, Any], nested: Any, recipient: str | None
) -> None:
    item = {"id": "wamid.S1", "status": "delivered", "timestamp": "1718001322", **top}
    item["message"] = nested
    [raw] = split_callback({"statuses": [item]})
    for st in (decode_status(raw.body), parse_status(orjson.loads(raw.body)), status(item)):
        assert st.recipient_id == recipient
        assert st.conversation == (recipient or "status:wamid.S1")
        assert st.model_extra == {"message": nested}  # kept as sent
        assert st.validation_error is None
        assert ("recipient_id" in st.model_fields_set) == (recipient is not None or bool(top))


@pytest.mark.parametrize(
    ("name", "code", "details"),
    [
        ("onprem/status_failed.json", 470, None),
        (
            "cloud/status_failed.json",
            130472,
            "Failed to send message because this user's phone number is part of an experiment",
        ),
        ("onprem/status_warning.json", 2026, None),
    ],
)
def test_status_errors(name: str, code: int, details: str | None) -> None:
    (error,) = one(name, Status).errors
    assert error.code == code
    assert error.title
    assert error.details == details


def test_failed_470_title() -> None:
    (error,) = one("onprem/status_failed.json", Status).errors
    assert error.title is not None
    assert "24 hours" in error.title


def test_group_status() -> None:
    st = one("cloud/status_group_read.json", Status)
    assert st.recipient_type == "group"
    assert st.recipient_participant_id == "<GROUP_PARTICIPANT_USER_PHONE_NUMBER>"
    assert st.model_extra is not None
    assert st.model_extra["recipient_participant_user_id"] == "US.123456"


def test_pmp_status_without_conversation() -> None:
    st = one("cloud/status_sent_pmp.json", Status)
    assert st.conversation_info is None
    assert st.conversation_id is None
    assert st.pricing is not None
    assert (st.pricing.pricing_model, st.pricing.category, st.pricing.type) == (
        "PMP",
        "utility",
        "regular",
    )
    assert st.business is not None
    assert st.business.phone_number_id == "109876543210987"


def test_status_played_business_number() -> None:
    st = one("cloud/status_played.json", Status)
    assert st.shape == "cloud"
    assert st.business is not None
    assert st.business.phone_number_id == "1122334455667"


def test_future_status_value_is_kept() -> None:
    st = status(
        {
            "id": "wamid.S2",
            "status": "exploded",
            "timestamp": "1718001400",
            "recipient_id": "15551230001",
            "biz_opaque_callback_data": "order-7",
        }
    )
    assert st.status == "exploded"
    assert st.biz_opaque_callback_data == "order-7"
    assert st.validation_error is None


def test_status_without_recipient_orders_by_id() -> None:
    st = status({"id": "wamid.S4", "status": "read", "timestamp": "1"})
    assert st.recipient_id is None
    assert st.conversation == "status:wamid.S4"
