"""Typed events: every fixture parses to the right class, both shapes normalize alike, and
odd input never raises."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, get_args

import orjson
import pytest
from pydantic import ValidationError

from whizrouter.events import (
    MESSAGE_TYPES,
    AnyMessage,
    AudioMessage,
    ButtonMessage,
    ContactsMessage,
    DocumentMessage,
    ImageMessage,
    InteractiveMessage,
    LocationMessage,
    Message,
    OrderMessage,
    ProviderErrorInfo,
    ReactionMessage,
    Status,
    StickerMessage,
    SystemMessage,
    TextMessage,
    UnknownMessage,
    VideoMessage,
    VoiceMessage,
)
from whizrouter.parsing import decode_message, decode_status, parse_message, parse_status
from whizrouter.payloads import split_callback

FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")

# The typed events each fixture yields, in order; raw events (errors, other fields) are left out.
EXPECTED: dict[str, list[type[Message] | type[Status]]] = {
    "onprem/audio.json": [AudioMessage],
    "onprem/batch_mixed.json": [TextMessage, ImageMessage, TextMessage, Status, Status],
    "onprem/button_template_quick_reply.json": [ButtonMessage],
    "onprem/contacts.json": [ContactsMessage],
    "onprem/document.json": [DocumentMessage],
    "onprem/errors_only.json": [],
    "onprem/image.json": [ImageMessage],
    "onprem/interactive_button_reply.json": [InteractiveMessage],
    "onprem/interactive_list_reply.json": [InteractiveMessage],
    "onprem/location.json": [LocationMessage],
    "onprem/order.json": [OrderMessage],
    "onprem/reaction.json": [ReactionMessage],
    "onprem/status_deleted.json": [Status],
    "onprem/status_delivered.json": [Status],
    "onprem/status_failed.json": [Status],
    "onprem/status_read.json": [Status],
    "onprem/status_sent.json": [Status],
    "onprem/status_warning.json": [Status],
    "onprem/sticker.json": [StickerMessage],
    "onprem/system_identity_changed.json": [SystemMessage],
    "onprem/system_user_changed_number.json": [SystemMessage],
    "onprem/text.json": [TextMessage],
    "onprem/text_group_mentions.json": [TextMessage],
    "onprem/text_identity.json": [TextMessage],
    "onprem/text_referral_ad.json": [TextMessage],
    "onprem/text_referred_product.json": [TextMessage],
    "onprem/text_reply_context.json": [TextMessage],
    "onprem/unknown.json": [UnknownMessage],
    "onprem/video.json": [VideoMessage],
    "onprem/voice.json": [VoiceMessage],
    "cloud/batch_mixed.json": [TextMessage, TextMessage, Status, Status, TextMessage],
    "cloud/button_template_quick_reply.json": [ButtonMessage],
    "cloud/edit.json": [UnknownMessage],
    "cloud/errors_only.json": [],
    "cloud/image_with_url.json": [ImageMessage],
    "cloud/interactive_button_reply.json": [InteractiveMessage],
    "cloud/interactive_list_reply.json": [InteractiveMessage],
    "cloud/interactive_with_value_errors.json": [UnknownMessage],
    "cloud/non_messages_field.json": [],
    "cloud/reaction.json": [ReactionMessage],
    "cloud/status_failed.json": [Status],
    "cloud/status_group_read.json": [Status],
    "cloud/status_played.json": [Status],
    "cloud/status_read.json": [Status],
    "cloud/status_sent.json": [Status],
    "cloud/status_sent_pmp.json": [Status],
    "cloud/system_user_changed_number.json": [SystemMessage],
    "cloud/text.json": [TextMessage],
    "cloud/text_referral_ad.json": [TextMessage],
    "cloud/text_reply_context.json": [TextMessage],
    "cloud/unsupported.json": [UnknownMessage],
    "cloud/voice.json": [VoiceMessage],
}


def events(name: str) -> list[Message | Status]:
    """Split a fixture as the receiver does, then decode each event as the dispatcher does."""
    out: list[Message | Status] = []
    for raw in split_callback(orjson.loads((FIXTURES / name).read_bytes())):
        if raw.kind == "message":
            out.append(decode_message(raw.body))
        elif raw.kind == "status":
            out.append(decode_status(raw.body))
    return out


def nested(body: bytes) -> dict[str, Any]:
    """A stored flat event body in the nested form whizrouter 0.1 stored."""
    flat = orjson.loads(body)
    return {
        "shape": flat.pop("shape"),
        "item": {k: v for k, v in flat.items() if k not in ("business", "contact")},
        "contact": flat.get("contact"),
        "metadata": flat.get("business"),
    }


def one(name: str, cls: type[T]) -> T:
    """The only event of a fixture, checked to be a ``cls``."""
    (event,) = events(name)
    assert isinstance(event, cls), f"{name}: {type(event).__name__}"
    return event


def message(item: dict[str, Any], **envelope: Any) -> Message:
    """Parse a hand-made message item."""
    return parse_message(
        {"shape": "onprem", "item": item, "contact": None, "metadata": None, **envelope}
    )


def status(item: dict[str, Any]) -> Status:
    """Parse a hand-made status item."""
    return parse_status({"shape": "onprem", "item": item, "contact": None, "metadata": None})


BASE = {"from": "15551230001", "id": "wamid.T1", "timestamp": "1718000001"}
STATUS = {
    "id": "wamid.S1",
    "status": "delivered",
    "timestamp": "1718000002",
    "recipient_id": "1555",
}


# --- every fixture ------------------------------------------------------------------------


def test_every_fixture_has_an_expectation() -> None:
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*.json")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_classes(name: str) -> None:
    parsed = events(name)
    assert [type(event) for event in parsed] == EXPECTED[name]
    shape = name.split("/")[0]
    assert all(event.shape == shape for event in parsed)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_call_validation_builds_what_the_part_by_part_path_builds(name: str) -> None:
    # The split always writes a shape; without one, parsing takes the lenient path that
    # validates item, contact and metadata one by one. Both must give the same event.
    for raw in split_callback(orjson.loads((FIXTURES / name).read_bytes())):
        if raw.kind == "raw":
            continue
        envelope = orjson.loads(raw.body)
        parse = parse_message if raw.kind == "message" else parse_status
        fast = parse(envelope)
        lenient = parse({key: value for key, value in envelope.items() if key != "shape"})
        assert type(fast) is type(lenient)
        assert fast == lenient
        assert fast.model_fields_set == lenient.model_fields_set


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_decoding_the_stored_bytes_builds_what_parsing_the_envelope_builds(name: str) -> None:
    # The dispatcher validates a flat body straight from its bytes; parse_message of the
    # decoded body, and of the nested form older versions stored, must give the same event.
    for raw in split_callback(orjson.loads((FIXTURES / name).read_bytes())):
        if raw.kind == "raw":
            continue
        assert not raw.body.startswith(b'{"shape":')  # stored flat
        decode = decode_message if raw.kind == "message" else decode_status
        parse = parse_message if raw.kind == "message" else parse_status
        from_bytes = decode(raw.body)
        old_body = orjson.dumps(nested(raw.body))
        for other in (parse(orjson.loads(raw.body)), parse(nested(raw.body)), decode(old_body)):
            assert type(other) is type(from_bytes)
            assert other == from_bytes
            assert other.model_fields_set == from_bytes.model_fields_set
            assert other.model_extra == from_bytes.model_extra


@pytest.mark.parametrize("number", [1.0, 1e16, 1718000001.5, 0.1, -2.5e-7])
def test_a_float_where_a_string_is_expected_reads_alike_on_every_path(number: float) -> None:
    # Pydantic writes a float as text one way when validating JSON and another from Python
    # objects; the fast path, the lenient one and 0.1's nested bodies must agree.
    text = {**BASE, "timestamp": number, "type": "text", "text": {"body": number}}
    broken = {**text, "type": "image", "image": {"caption": number}}  # no id: lenient path
    for item in (text, broken):
        [raw] = split_callback({"messages": [item]})
        events = [
            decode_message(raw.body),
            parse_message(orjson.loads(raw.body)),
            parse_message(nested(raw.body)),
            decode_message(orjson.dumps(nested(raw.body))),
        ]
        assert all(event == events[0] for event in events)
        assert events[0].timestamp == events[1].timestamp != ""
    [raw] = split_callback({"statuses": [{**STATUS, "timestamp": number}]})
    statuses = [decode_status(raw.body), parse_status(nested(raw.body))]
    assert statuses[0] == statuses[1]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_flat_body_is_the_item_with_the_envelope_fields_after_its_own(name: str) -> None:
    # split_callback splices the envelope's fields into the item's JSON; the result must be
    # what encoding the merged dict gives, key order included.
    payload = orjson.loads((FIXTURES / name).read_bytes())
    for raw in split_callback(payload):
        if raw.kind == "raw":
            continue
        flat = orjson.loads(raw.body)
        item = {k: v for k, v in flat.items() if k not in ("shape", "business", "contact")}
        added = {"shape": flat["shape"], "business": flat["business"]}
        if raw.kind == "message":
            added["contact"] = flat["contact"]
        assert raw.body == orjson.dumps({**item, **added})
        assert list(flat)[-len(added) :] == list(added)
        assert flat["shape"] == ("cloud" if name.startswith("cloud/") else "onprem")


@pytest.mark.parametrize("key", ["shape", "business", "contact"])
def test_an_item_with_a_key_named_like_an_envelope_field_is_stored_nested(key: str) -> None:
    item = {**BASE, "type": "text", "text": {"body": "hi"}, key: "mine"}
    callback = {"contacts": [{"wa_id": BASE["from"], "profile": {"name": "Ana"}}]}
    [raw] = split_callback({**callback, "messages": [item]})
    assert raw.body.startswith(b'{"shape":')
    decoded = decode_message(raw.body)
    assert isinstance(decoded, TextMessage) and decoded.text.body == "hi"
    assert decoded.shape == "onprem" and decoded.contact is not None
    assert decoded.contact.name == "Ana"
    assert decoded.business is None  # the envelope's fields win, as they always did
    [status_raw] = split_callback({"statuses": [{**STATUS, key: "mine"}]})
    assert status_raw.body.startswith(b'{"shape":')
    assert decode_status(status_raw.body).status == "delivered"


def test_a_flat_body_that_does_not_validate_takes_the_lenient_path() -> None:
    broken = {**BASE, "type": "image", "image": {"caption": "no id"}}
    [raw] = split_callback({"messages": [broken]})
    decoded = decode_message(raw.body)
    assert isinstance(decoded, UnknownMessage) and decoded.reason == "invalid"
    assert decoded.raw == broken and list(decoded.raw) == list(broken)  # key order kept
    assert decoded.validation_error is not None and "image.id" in decoded.validation_error


@pytest.mark.parametrize("name", ["onprem/text.json", "cloud/status_sent.json"])
def test_events_are_frozen(name: str) -> None:
    (event,) = events(name)
    with pytest.raises(ValidationError):
        event.id = "changed"  # type: ignore[misc]


# --- common message fields ----------------------------------------------------------------


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


# --- media --------------------------------------------------------------------------------


def test_image_both_shapes() -> None:
    onprem = one("onprem/image.json", ImageMessage)
    assert onprem.image.id == "0f6c1a52-3b7e-4d19-8e2a-6a4f9d1c3b70"
    assert onprem.image.caption == "This is the broken handle"
    assert onprem.image.mime_type == "image/jpeg"
    cloud = one("cloud/image_with_url.json", ImageMessage)
    assert cloud.image.id == "65463453"
    assert cloud.image.caption is None
    assert cloud.image.url is not None
    assert cloud.image.url.startswith("https://lookaside.fbsbx.com/")


def test_video_frequently_forwarded() -> None:
    msg = one("onprem/video.json", VideoMessage)
    assert msg.video.id == "a3d9e1f0-6b2c-4c57-9d80-1e2f3a4b5c6d"
    assert msg.context is not None
    assert msg.context.frequently_forwarded is True


def test_audio_is_not_voice() -> None:
    msg = one("onprem/audio.json", AudioMessage)
    assert msg.type == "audio"
    assert msg.audio.mime_type == "audio/mpeg"


@pytest.mark.parametrize(
    ("name", "media_id"),
    [
        ("onprem/voice.json", "2b9c8d7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e"),
        ("cloud/voice.json", "1234567890987654321"),
    ],
)
def test_voice_normalized_in_both_shapes(name: str, media_id: str) -> None:
    msg = one(name, VoiceMessage)
    assert msg.type == "voice"
    assert msg.voice.id == media_id
    assert msg.voice.mime_type == "audio/ogg; codecs=opus"


def test_cloud_audio_without_voice_flag_stays_audio() -> None:
    msg = message({**BASE, "type": "audio", "audio": {"id": "1", "voice": False}})
    assert isinstance(msg, AudioMessage)
    assert msg.type == "audio"


def test_document() -> None:
    msg = one("onprem/document.json", DocumentMessage)
    assert msg.document.filename == "invoice-0042.pdf"
    assert msg.document.caption == "Invoice for May"
    assert msg.document.id == "c4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70"


def test_sticker_pack_metadata() -> None:
    msg = one("onprem/sticker.json", StickerMessage)
    metadata = msg.sticker.metadata
    assert metadata is not None
    assert metadata.sticker_pack_name == "Coffee Mood"
    assert metadata.emojis == ["☕", "😊"]
    assert metadata.is_first_party_sticker == 0
    dumped = msg.model_dump(by_alias=True)["sticker"]["metadata"]
    assert dumped["sticker-pack-publisher"] == "Example Studio"


# --- other message types ------------------------------------------------------------------


def test_location() -> None:
    msg = one("onprem/location.json", LocationMessage)
    assert msg.location.latitude == pytest.approx(45.4641943)
    assert msg.location.longitude == pytest.approx(9.1896346)
    assert msg.location.name == "Duomo di Milano"


def test_contacts_cards_are_not_the_sender() -> None:
    msg = one("onprem/contacts.json", ContactsMessage)
    assert msg.contact is not None
    assert msg.contact.name == "Dan Levi"
    (card,) = msg.contacts
    assert card.name is not None
    assert card.name.formatted_name == "Maria Kowalski"
    assert [phone.wa_id for phone in card.phones] == ["15551230042", None]
    assert card.emails[0].email == "maria.k@example.com"
    assert card.addresses[0].zip == "62701"
    assert card.org is not None
    assert card.org.company == "Example Logistics"
    assert card.birthday == "1990-04-12"


@pytest.mark.parametrize(
    ("name", "kind", "reply_id", "reply_title"),
    [
        ("onprem/interactive_button_reply.json", "button_reply", "confirm_yes", "Yes, confirm"),
        ("onprem/interactive_list_reply.json", "list_reply", "slot_2024_06_11_15", "Tue 15:00"),
        ("cloud/interactive_button_reply.json", "button_reply", "callback_data", "title"),
        ("cloud/interactive_list_reply.json", "list_reply", "callback_data", "title"),
    ],
)
def test_interactive_replies(name: str, kind: str, reply_id: str, reply_title: str) -> None:
    msg = one(name, InteractiveMessage)
    assert msg.interactive.type == kind
    assert msg.reply_id == reply_id
    assert msg.reply_title == reply_title


def test_list_reply_description() -> None:
    msg = one("cloud/interactive_list_reply.json", InteractiveMessage)
    assert msg.interactive.list_reply is not None
    assert msg.interactive.list_reply.description == "description"


def test_flow_reply_has_no_reply_id() -> None:
    msg = message(
        {
            **BASE,
            "type": "interactive",
            "interactive": {
                "type": "nfm_reply",
                "nfm_reply": {"name": "flow", "body": "Sent", "response_json": '{"a": 1}'},
            },
        }
    )
    assert isinstance(msg, InteractiveMessage)
    assert msg.reply_id is None
    assert msg.reply_title is None
    assert msg.interactive.nfm_reply is not None
    assert msg.interactive.nfm_reply.response_json == '{"a": 1}'


@pytest.mark.parametrize(
    ("name", "payload", "text"),
    [
        ("onprem/button_template_quick_reply.json", "STOP_PROMOTIONS", "Stop promotions"),
        ("cloud/button_template_quick_reply.json", "callback_data", "title"),
    ],
)
def test_template_button(name: str, payload: str, text: str) -> None:
    msg = one(name, ButtonMessage)
    assert msg.button.payload == payload
    assert msg.button.text == text


def test_template_button_with_null_payload() -> None:
    msg = message({**BASE, "type": "button", "button": {"payload": None, "text": "OK"}})
    assert isinstance(msg, ButtonMessage)
    assert msg.button.payload is None


@pytest.mark.parametrize(
    ("name", "emoji"), [("onprem/reaction.json", "👍"), ("cloud/reaction.json", "😮")]
)
def test_reaction(name: str, emoji: str) -> None:
    msg = one(name, ReactionMessage)
    assert msg.reaction.emoji == emoji
    assert msg.removed is False


@pytest.mark.parametrize(
    "reaction", [{"message_id": "wamid.X"}, {"message_id": "wamid.X", "emoji": ""}]
)
def test_reaction_removed(reaction: dict[str, Any]) -> None:
    msg = message({**BASE, "type": "reaction", "reaction": reaction})
    assert isinstance(msg, ReactionMessage)
    assert msg.removed is True


def test_order() -> None:
    msg = one("onprem/order.json", OrderMessage)
    assert msg.order.catalog_id == "481923000000001"
    assert msg.order.text == "Please gift-wrap the mugs"
    items = [
        (i.product_retailer_id, i.quantity, i.item_price, i.currency)
        for i in msg.order.product_items
    ]
    assert items == [("MUG-BLUE-350", 2, 12.5, "EUR"), ("BEANS-1KG", 1, 21.0, "EUR")]


@pytest.mark.parametrize(
    ("name", "new_wa_id"),
    [
        ("onprem/system_user_changed_number.json", "15551230099"),
        ("cloud/system_user_changed_number.json", "972912345678"),
    ],
)
def test_system_number_change_both_shapes(name: str, new_wa_id: str) -> None:
    msg = one(name, SystemMessage)
    assert msg.new_wa_id == new_wa_id
    assert msg.system_type == "user_changed_number"
    assert msg.contact is None


def test_system_identity_changed() -> None:
    msg = one("onprem/system_identity_changed.json", SystemMessage)
    assert msg.system_type == "user_identity_changed"
    assert msg.system.identity == "Zk3xQe9Rl0A="
    assert msg.system.user == "15551230003"
    assert msg.new_wa_id is None


# --- unknown messages ---------------------------------------------------------------------


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
        metadata=["x"],
    )
    assert isinstance(msg, TextMessage)
    assert msg.contact is None
    assert msg.business is None


def test_extra_fields_are_kept() -> None:
    msg = message(
        {**BASE, "type": "text", "text": {"body": "hi", "lang": "en"}, "brand_new": {"a": 1}}
    )
    assert isinstance(msg, TextMessage)
    assert msg.model_extra == {"brand_new": {"a": 1}}
    assert msg.text.model_extra == {"lang": "en"}
    assert msg.model_dump(by_alias=True)["brand_new"] == {"a": 1}


def test_numbers_where_strings_are_expected() -> None:
    msg = message({**BASE, "timestamp": 1718000001, "type": "text", "text": {"body": "hi"}})
    assert isinstance(msg, TextMessage)
    assert msg.timestamp == "1718000001"


def test_item_without_string_id_raises() -> None:
    with pytest.raises(ValidationError):
        message({"from": "15551230001", "type": "text", "text": {"body": "hi"}})


def test_envelope_without_item_raises() -> None:
    with pytest.raises(TypeError, match="item"):
        parse_message({"shape": "onprem"})


def test_every_message_class_is_reachable() -> None:
    classes = set(get_args(AnyMessage))
    assert set(MESSAGE_TYPES.values()) | {UnknownMessage} == classes
    assert all(issubclass(cls, Message) for cls in classes)


# --- statuses -----------------------------------------------------------------------------


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


def test_status_without_recipient_orders_by_id() -> None:
    st = status({"id": "wamid.S4", "status": "read", "timestamp": "1"})
    assert st.recipient_id is None
    assert st.conversation == "status:wamid.S4"


# --- error objects ------------------------------------------------------------------------


def test_cloud_and_onprem_errors_normalize_alike() -> None:
    cloud = ProviderErrorInfo.model_validate(
        {
            "code": 131000,
            "title": "Something went wrong",
            "message": "Something went wrong",
            "error_data": {"details": "Unsupported webhook payload"},
        }
    )
    onprem = ProviderErrorInfo.model_validate(
        {
            "code": 400,
            "title": "Media download error",
            "details": "Failed to download",
            "href": "https://example.com/errors",
        }
    )
    assert cloud.details == "Unsupported webhook payload"
    assert onprem.details == "Failed to download"
    assert onprem.href == "https://example.com/errors"
