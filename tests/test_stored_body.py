"""The stored event body: every fixture is split and decoded to the right classes, the body's
layout is the item with the added fields after its own, and every path of decoding it (from
the bytes, from the decoded dict, part by part) builds the same event."""

from __future__ import annotations

import orjson
import pytest

from tests.events.samples import BASE, FIXTURES, STATUS, events
from whizrouter.events import (
    AudioMessage,
    ButtonMessage,
    ContactsMessage,
    DocumentMessage,
    ImageMessage,
    InteractiveMessage,
    LocationMessage,
    Message,
    OrderMessage,
    ReactionMessage,
    Status,
    StickerMessage,
    SystemMessage,
    TextMessage,
    UnknownMessage,
    VideoMessage,
    VoiceMessage,
)
from whizrouter.inbox.base import StoredEvent
from whizrouter.payloads import split_callback
from whizrouter.stored_body import (
    decode_event,
    decode_message,
    decode_status,
    parse_message,
    parse_status,
)

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
    # validates item, contact and business one by one. Both must give the same event.
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
    # The dispatcher validates a body straight from its bytes; parse_message of the decoded
    # body must give the same event.
    for raw in split_callback(orjson.loads((FIXTURES / name).read_bytes())):
        if raw.kind == "raw":
            continue
        assert not raw.body.startswith(b'{"shape":')  # stored flat
        decode = decode_message if raw.kind == "message" else decode_status
        parse = parse_message if raw.kind == "message" else parse_status
        from_bytes = decode(raw.body)
        other = parse(orjson.loads(raw.body))
        assert type(other) is type(from_bytes)
        assert other == from_bytes
        assert other.model_fields_set == from_bytes.model_fields_set
        assert other.model_extra == from_bytes.model_extra


@pytest.mark.parametrize("number", [1.0, 1e16, 1718000001.5, 0.1, -2.5e-7])
def test_a_float_where_a_string_is_expected_reads_alike_on_every_path(number: float) -> None:
    # Pydantic writes a float as text one way when validating JSON and another from Python
    # objects; the fast path and the lenient one must agree.
    text = {**BASE, "timestamp": number, "type": "text", "text": {"body": number}}
    broken = {**text, "type": "image", "image": {"caption": number}}  # no id: lenient path
    for item in (text, broken):
        [raw] = split_callback({"messages": [item]})
        events = [decode_message(raw.body), parse_message(orjson.loads(raw.body))]
        assert all(event == events[0] for event in events)
        assert events[0].timestamp == events[1].timestamp != ""
    [raw] = split_callback({"statuses": [{**STATUS, "timestamp": number}]})
    statuses = [decode_status(raw.body), parse_status(orjson.loads(raw.body))]
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
def test_an_item_with_a_key_named_like_an_added_field_keeps_it_and_the_added_one_wins(
    key: str,
) -> None:
    item = {**BASE, "type": "text", "text": {"body": "hi"}, key: "mine"}
    callback = {"contacts": [{"wa_id": BASE["from"], "profile": {"name": "Ana"}}]}
    [raw] = split_callback({**callback, "messages": [item]})
    assert raw.body.startswith(orjson.dumps(item)[:-1] + b',"shape":"onprem","business":null,')
    decoded = decode_message(raw.body)
    assert isinstance(decoded, TextMessage) and decoded.text.body == "hi"
    assert decoded.shape == "onprem" and decoded.contact is not None
    assert decoded.contact.name == "Ana"
    assert decoded.business is None  # the envelope's fields win, as they always did
    [status_raw] = split_callback({"statuses": [{**STATUS, key: "mine"}]})
    assert status_raw.body == orjson.dumps({**STATUS, key: "mine"})[:-1] + (
        b',"shape":"onprem","business":null}'
    )
    assert decode_status(status_raw.body).status == "delivered"
    # An item that does not validate keeps its own value in raw, read back from the bytes.
    broken = {**BASE, "type": "image", "image": {"caption": "no id"}, key: "mine"}
    [broken_raw] = split_callback({**callback, "messages": [broken]})
    unknown = decode_message(broken_raw.body)
    assert isinstance(unknown, UnknownMessage) and unknown.reason == "invalid"
    assert unknown.raw == broken and list(unknown.raw) == list(broken)
    assert unknown.shape == "onprem" and unknown.contact is not None


def test_a_flat_body_that_does_not_validate_takes_the_lenient_path() -> None:
    broken = {**BASE, "type": "image", "image": {"caption": "no id"}}
    [raw] = split_callback({"messages": [broken]})
    decoded = decode_message(raw.body)
    assert isinstance(decoded, UnknownMessage) and decoded.reason == "invalid"
    assert decoded.raw == broken and list(decoded.raw) == list(broken)  # key order kept
    assert decoded.validation_error is not None and "image.id" in decoded.validation_error


def test_a_body_that_is_not_an_object_raises() -> None:
    with pytest.raises(TypeError, match="not a JSON object"):
        decode_message(b"[5]")
    with pytest.raises(TypeError, match="not a JSON object"):
        decode_status(b"5")


def test_a_raw_body_keeps_the_callback_piece_and_the_reason_and_decodes_to_the_piece() -> None:
    callback = {"errors": [{"code": 501, "title": "Unknown"}]}
    [raw] = split_callback(callback)
    assert raw.kind == "raw"
    assert orjson.loads(raw.body) == {"shape": "onprem", "item": callback, "reason": "errors"}
    stored = StoredEvent(1, raw.kind, raw.key, raw.conversation, raw.body)
    assert decode_event(stored) == (callback, None)


def test_decode_event_gives_a_message_with_its_sender_and_a_status_without() -> None:
    for raw in split_callback(orjson.loads((FIXTURES / "onprem/batch_mixed.json").read_bytes())):
        event, contact = decode_event(StoredEvent(1, raw.kind, raw.key, raw.conversation, raw.body))
        if raw.kind == "message":
            assert isinstance(event, Message) and contact is event.contact is not None
        else:
            assert isinstance(event, Status) and contact is None
