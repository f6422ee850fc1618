"""The body an inbox stores for each event: written here, and read back into a typed event here.

The receiver's split (``whizrouter.payloads``) encodes each event with the functions below
before it answers 200; the dispatcher decodes it with :func:`decode_event` when it claims the
event. A body is a JSON object, in one of three forms::

    message  {...item..., "shape": "onprem"|"cloud", "business": {...}|null, "contact": {...}|null}
    status   {...item..., "shape": "onprem"|"cloud", "business": {...}|null}
    raw      {"shape": "onprem"|"cloud", "item": {...}, "reason": "..."}

For a message or a status, the item is the object exactly as the provider sent it, its keys in
their order, and the added fields follow its own keys: ``shape`` is the callback's shape,
``business`` the Cloud ``value.metadata`` (our number; on-premises ``null``, or
``{"number": "<name>"}`` for a callback posted to a number's own path ``/webhook/<name>``, so
the receiving number survives storage), and ``contact``
the sender's entry of the callback's ``contacts`` (``null`` when none matches). The item is
never empty (it has an id at least). An item with a key of its own named like an added field
keeps it: the body then holds that key twice, the added one last, and every reader takes the
last one, as JSON parsers do; only ``raw`` (of an event that did not validate) shows the
item's own value, read back from the bytes.

A raw event's ``item`` is a callback-shaped object (``{"errors": [...]}``, or a Cloud envelope
holding one change) that ``on_raw`` handlers receive as is; ``reason`` says why it is raw.

Why flat: the dispatcher validates a message or a status straight from the stored bytes, one
pydantic call without building or copying a dict (37k instead of 55k instructions to decode a
text message), and the split writes the body by splicing the added fields into the item's own
JSON instead of copying the item into a new dict. Whatever that one call does not build (a
Cloud voice note, which arrives as an ``audio``; a type without a class; a payload or an added
field that does not validate) is built part by part by ``whizrouter.parsing``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Union

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from whizrouter.defaults import API_SHAPES, ApiShape
from whizrouter.events.media_messages import AudioMessage
from whizrouter.events.message import Message
from whizrouter.events.registry import MESSAGE_TYPES
from whizrouter.events.statuses import Status
from whizrouter.inbox.base import StoredEvent
from whizrouter.parsing import message_from_parts, status_from_parts, validate

__all__ = [
    "added_fields",
    "decode_event",
    "decode_message",
    "decode_status",
    "message_body",
    "parse_message",
    "parse_status",
    "raw_body",
    "status_body",
]

# --- writing ------------------------------------------------------------------------------

#: What an on-premises body adds after the item's own keys (a message's ``contact`` follows).
_ONPREM_ADDED = b',"shape":"onprem","business":null'


def added_fields(shape: ApiShape, metadata: dict[str, Any] | None) -> bytes:
    """The ``shape`` and ``business`` a body adds after its item, as JSON that splices in.

    The same for every event of a callback's ``value``: the split encodes them once.
    """
    if metadata is None and shape == "onprem":
        return _ONPREM_ADDED
    return b',"shape":"' + shape.encode() + b'","business":' + orjson.dumps(metadata)


def message_body(item: dict[str, Any], added: bytes, contact: dict[str, Any] | None) -> bytes:
    """The body of a message: its item with ``added`` and the sender's ``contact`` spliced in.

    Encoding the item on its own and splicing costs less than copying it into a new dict to
    encode; the bytes are the same. ``b"".join`` also copies them out of orjson's buffer of
    about 4 KiB, so a body waiting in the inbox takes its own size.
    """
    return b"".join((orjson.dumps(item)[:-1], added, b',"contact":', orjson.dumps(contact), b"}"))


def status_body(item: dict[str, Any], added: bytes) -> bytes:
    """The body of a status: its item with ``added`` spliced in (see ``message_body``)."""
    return b"".join((orjson.dumps(item)[:-1], added, b"}"))


def raw_body(shape: ApiShape, item: dict[str, Any], reason: str) -> bytes:
    """The body of a raw event: the callback-shaped ``item`` and why it is raw."""
    # orjson hands back its output in a buffer of about 4 KiB whatever the size; a body may
    # wait in the inbox for a long time, so keep a copy of exactly its size.
    return bytes(memoryview(orjson.dumps({"shape": shape, "item": item, "reason": reason})))


# --- reading ------------------------------------------------------------------------------

#: The fields each body adds after its item, in their order.
_MESSAGE_ADDED = ("shape", "business", "contact")
_STATUS_ADDED = ("shape", "business")

# Every modelled message class, told apart by ``type`` inside the validator: validating a
# body straight from its JSON bytes skips building the decoded dicts and copying them, about
# half of what turning a stored event into a typed one costs.
_MESSAGE_FROM_JSON = TypeAdapter[Message](
    # Built from the table, so a class added there is validated here too.
    Annotated[Union[tuple(MESSAGE_TYPES.values())], Field(discriminator="type")]  # type: ignore[arg-type]  # noqa: UP007
).validator.validate_json
_STATUS_FROM_JSON = Status.__pydantic_validator__.validate_json


def decode_event(stored: StoredEvent) -> tuple[Any, Any]:
    """Turn a stored event into ``(typed event, contact)``; a raw event's item stays a dict."""
    if stored.kind == "message":
        message = decode_message(stored.body)
        return message, message.contact
    if stored.kind == "status":
        return decode_status(stored.body), None
    body = orjson.loads(stored.body)
    return body.get("item", body), None


def decode_message(body: bytes) -> Message:
    """The typed message of a stored message body, as ``parse_message`` builds it.

    A body whose item validates as its type's class is validated straight from the bytes;
    anything else (a Cloud voice note, an unmodelled type, a payload that does not validate)
    is built part by part.

    Raises:
        TypeError: the body is not a JSON object.
        pydantic.ValidationError: the item has no string ``id`` or ``from``; the split never
            stores such an item as a message.
    """
    try:
        message: Message = _MESSAGE_FROM_JSON(body)
    except ValidationError:
        pass
    else:
        # A Cloud voice note arrives as an audio; the part-by-part path makes it a voice.
        if not (isinstance(message, AudioMessage) and message.audio.voice is True):
            return message
    decoded = _object(orjson.loads(body))
    return _message_by_parts(decoded, _item_as_stored(decoded, body, _MESSAGE_ADDED))


def decode_status(body: bytes) -> Status:
    """The ``Status`` of a stored status body, as ``parse_status`` builds it.

    Raises:
        TypeError: the body is not a JSON object.
        pydantic.ValidationError: the item has no string ``id`` or ``status``; the split never
            stores such an item as a status.
    """
    try:
        status: Status = _STATUS_FROM_JSON(body)
    except ValidationError:
        pass
    else:
        return status
    decoded = _object(orjson.loads(body))
    return _status_by_parts(decoded, _item_as_stored(decoded, body, _STATUS_ADDED))


def parse_message(body: dict[str, Any]) -> Message:
    """Build the typed message of a decoded message body (the item with the added fields).

    Returns:
        An instance of the class for the item's ``type`` (see ``MESSAGE_TYPES``), a
        ``VoiceMessage`` for a Cloud voice note, or an ``UnknownMessage`` for a type that is
        not modelled or a payload that does not validate.

    Raises:
        TypeError: the body is not a dict.
        pydantic.ValidationError: the item has no string ``id`` or ``from``.
    """
    body = _object(body)
    wire_type = body.get("type")
    if body.get("shape") in API_SHAPES and isinstance(wire_type, str):
        cls = MESSAGE_TYPES.get(wire_type)
        # An audio item may be a Cloud voice note, which the part-by-part path makes a voice.
        if cls is not None and cls is not AudioMessage:
            try:
                return validate(cls, body)
            except ValidationError:
                pass
    return _message_by_parts(body, _without(body, _MESSAGE_ADDED))


def parse_status(body: dict[str, Any]) -> Status:
    """Build the ``Status`` of a decoded status body (the item with the added fields).

    Fields that do not validate are left at their defaults, and the status keeps its item in
    ``raw`` and a ``validation_error``, so a status is never lost to an odd field.

    Raises:
        TypeError: the body is not a dict.
        pydantic.ValidationError: the item has no string ``id`` or ``status``.
    """
    body = _object(body)
    if body.get("shape") in API_SHAPES:
        try:
            return validate(Status, body)
        except ValidationError:
            pass
    return _status_by_parts(body, _without(body, _STATUS_ADDED))


def _message_by_parts(body: dict[str, Any], item: dict[str, Any]) -> Message:
    return message_from_parts(item, body.get("shape"), body.get("business"), body.get("contact"))


def _status_by_parts(body: dict[str, Any], item: dict[str, Any]) -> Status:
    return status_from_parts(item, body.get("shape"), body.get("business"))


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise TypeError(f"stored body is not a JSON object (got {type(body).__name__})")
    return body


def _without(body: dict[str, Any], added: tuple[str, ...]) -> dict[str, Any]:
    """The item of a decoded body: the body without its added fields."""
    return {key: value for key, value in body.items() if key not in added}


def _item_as_stored(body: dict[str, Any], raw: bytes, added: tuple[str, ...]) -> dict[str, Any]:
    """The item of a stored body, with any key of its own named like an added field."""
    # Such a key is in the bytes twice and in the decoded dict once, with the added value.
    # Counting the names is cheap, and a count above one per name is rare enough that only
    # then the bytes are read again, keeping every key.
    if sum(raw.count(b'"' + name.encode() + b'":') for name in added) <= len(added):
        return _without(body, added)
    pairs: list[tuple[str, Any]] = []

    def keep(found: list[tuple[str, Any]]) -> dict[str, Any]:
        # Called for every object, the outermost last: its pairs are the body's own.
        nonlocal pairs
        pairs = found
        return dict(found)

    json.loads(raw, object_pairs_hook=keep)
    return dict(pairs[: -len(added)])
