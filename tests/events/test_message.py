"""The fields every message carries: sender and contact, our number, reply context, referral,
identity, group fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.events.samples import events, one
from whizrouter.events import Message, TextMessage


def test_onprem_text_with_contact() -> None:
    msg = one("onprem/text.json", TextMessage)
    assert msg.text.body == "Hi! Is the shop open today?"
    assert msg.from_ == "15551230001"
    assert msg.conversation == "15551230001"
    assert msg.type == "text"
    assert msg.timestamp == "1718000001"
    assert msg.timestamp_dt == datetime(2024, 6, 10, 6, 13, 21, tzinfo=UTC)
    assert msg.contact is not None
    assert msg.contact.wa_id == "15551230001"
    assert msg.contact.name == "Ana Souza"
    assert msg.business is None
    assert msg.errors == []
    assert msg.model_dump(by_alias=True)["from"] == "15551230001"


def test_cloud_text_with_business_number_and_contact_extras() -> None:
    msg = one("cloud/text.json", TextMessage)
    assert msg.text.body == "Body Text"
    assert msg.business is not None
    assert msg.business.phone_number_id == "1122334455667"
    assert msg.business.display_phone_number == "972123456789"
    assert msg.contact is not None
    assert msg.contact.name == "Test Name"
    assert msg.contact.user_id == "US.13491208655302741918"
    assert msg.contact.model_extra == {"parent_user_id": "US.ENT.11815799212886844830"}


@pytest.mark.parametrize(
    ("name", "quoted_from", "quoted_id"),
    [
        (
            "onprem/text_reply_context.json",
            "15550009999",
            "wamid.GAtNVFUxTlRFeU16QXdNREVWQWdBUkdCSkNSRGM0",
        ),
        ("cloud/text_reply_context.json", "972123456789", "wamid.xyzxyz=="),
    ],
)
def test_reply_context(name: str, quoted_from: str, quoted_id: str) -> None:
    msg = one(name, TextMessage)
    assert msg.context is not None
    assert msg.context.from_ == quoted_from
    assert msg.context.id == quoted_id


def test_referred_product() -> None:
    msg = one("onprem/text_referred_product.json", TextMessage)
    assert msg.context is not None
    assert msg.context.referred_product is not None
    assert msg.context.referred_product.product_retailer_id == "MUG-BLUE-350"


def test_referral_both_shapes() -> None:
    onprem = one("onprem/text_referral_ad.json", TextMessage)
    assert onprem.referral is not None
    assert onprem.referral.source_type == "ad"
    assert onprem.referral.image is not None
    assert onprem.referral.image.id == "5c1f2e9a-7d3b-4f0e-9a61-2b8d4c7e0f11"
    cloud = one("cloud/text_referral_ad.json", TextMessage)
    assert cloud.referral is not None
    assert cloud.referral.ctwa_clid == "CTWA_CLID"
    assert cloud.referral.image_url == "RAW_IMAGE_URL"
    assert cloud.referral.image is None


def test_identity_keeps_integer_timestamp() -> None:
    msg = one("onprem/text_identity.json", TextMessage)
    assert msg.identity is not None
    assert msg.identity.created_timestamp == 1718000240000
    assert msg.identity.acknowledged is True


def test_group_mentions() -> None:
    msg = one("onprem/text_group_mentions.json", TextMessage)
    assert msg.group_id == "15551230001-1717990000"
    assert msg.context is not None
    assert msg.context.mentions == ["15551230002", "15551230003"]
    assert msg.context.group_id == "15551230001-1717990000"


def test_batch_keeps_order_and_matches_each_sender() -> None:
    parsed = events("onprem/batch_mixed.json")
    senders = [
        (e.from_, e.contact.name if e.contact else None) for e in parsed if isinstance(e, Message)
    ]
    assert senders == [
        ("15551230001", "Ana Souza"),
        ("15551230002", "Ben Okafor"),
        ("15551230001", "Ana Souza"),
    ]
    cloud = events("cloud/batch_mixed.json")
    numbers = [e.business.phone_number_id if e.business else None for e in cloud]
    assert numbers == ["109876543210987"] * 4 + ["109876543210988"]
