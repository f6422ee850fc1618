"""Parsing: the entry points that turn a stored event envelope into a typed event.

This module owns :func:`parse_message` and :func:`parse_status` and their lenient validation:
a type whizrouter does not model, or a payload that does not validate, becomes an
``UnknownMessage`` (or a ``Status`` with a ``validation_error``) instead of an exception. The
models themselves live in :mod:`whizrouter.events`.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar, Union

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from whizrouter.defaults import API_SHAPES
from whizrouter.events.media_messages import AudioMessage, VoiceMessage
from whizrouter.events.message import Message
from whizrouter.events.registry import MESSAGE_TYPES
from whizrouter.events.statuses import Status
from whizrouter.events.unknown import UnknownMessage, UnknownReason
from whizrouter.events.wire import BusinessNumber, Contact, WireModel

__all__ = ["decode_message", "decode_status", "parse_message", "parse_status"]

_UNSUPPORTED_TYPES = frozenset({"unknown", "unsupported", "ephemeral"})
_MAX_REPORTED_ERRORS = 5


#: The keys a flat event body adds to the item (see ``whizrouter.payloads``).
_FLAT_KEYS = ("shape", "business", "contact")


def _nested(envelope: dict[str, Any]) -> dict[str, Any]:
    """The ``{"shape", "item", "contact", "metadata"}`` form of a decoded event body.

    A flat body (one that has ``business``) is the item with the envelope's fields added at
    its end; taking them off gives back the item as the provider sent it, in its key order.
    """
    if "business" not in envelope:
        return envelope
    item = {key: value for key, value in envelope.items() if key not in _FLAT_KEYS}
    return {
        "shape": envelope.get("shape"),
        "item": item,
        "contact": envelope.get("contact"),
        "metadata": envelope.get("business"),
    }


def _item(envelope: dict[str, Any]) -> dict[str, Any]:
    item = envelope.get("item")
    if not isinstance(item, dict):
        raise TypeError(f"event envelope has no item object (got {type(item).__name__})")
    return item


ModelT = TypeVar("ModelT", bound=WireModel)


def _validate(cls: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Validate decoded JSON as if from its bytes, as the dispatcher's fast path does.

    Pydantic turns a float arriving in a string field into text one way from JSON
    (``1.0`` becomes ``"1"``) and another from Python (``"1.0"``); validating JSON here too
    makes every path build the same event from the same stored body.
    """
    try:
        body = orjson.dumps(data)
    except orjson.JSONEncodeError:  # not decoded JSON (a hand-made dict): validate as is
        return cls.__pydantic_validator__.validate_python(data)  # type: ignore[no-any-return]
    return cls.__pydantic_validator__.validate_json(body)  # type: ignore[no-any-return]


def _lenient(model: type[WireModel], data: Any) -> Any:
    """Validate an envelope part on its own, so a malformed one never spoils the event."""
    if not isinstance(data, dict):
        return None
    try:
        return _validate(model, data)
    except ValidationError:
        return None


def _validate_whole(
    cls: type[ModelT], item: dict[str, Any], envelope: dict[str, Any], with_contact: bool
) -> ModelT | None:
    """The fast path: the item and its envelope parts validated in one call.

    Returns None when anything does not validate; the lenient path then works out which
    part to leave out. Only used where both paths build the same event.
    """
    data = {**item, "shape": envelope.get("shape"), "business": envelope.get("metadata")}
    if with_contact:
        data["contact"] = envelope.get("contact")
    try:
        model = _validate(cls, data)
    except ValidationError:
        return None
    return model


def _envelope_fields(envelope: dict[str, Any]) -> dict[str, Any]:
    shape = envelope.get("shape")
    metadata = envelope.get("metadata")
    if shape not in API_SHAPES:
        shape = "cloud" if metadata is not None else "onprem"
    return {"shape": shape, "business": _lenient(BusinessNumber, metadata)}


def _summarize(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = [
        f"{'.'.join(str(part) for part in error['loc']) or '(item)'}: {error['msg']}"
        for error in errors[:_MAX_REPORTED_ERRORS]
    ]
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return "; ".join(parts)


def _drop_failing(data: dict[str, Any], exc: ValidationError) -> None:
    for error in exc.errors(include_url=False, include_input=False):
        if error["loc"]:
            data.pop(str(error["loc"][0]), None)


def _unknown(
    item: dict[str, Any], fields: dict[str, Any], reason: UnknownReason, error: str | None
) -> UnknownMessage:
    data = {**item, **fields, "reason": reason, "validation_error": error, "raw": item}
    try:
        return _validate(UnknownMessage, data)
    except ValidationError as exc:
        # Some base field is malformed too: leave it out (``raw`` still has it) and say so.
        _drop_failing(data, exc)
        data.setdefault("timestamp", "")
        data.setdefault("type", "unknown")
        data["reason"] = "invalid"
        data["validation_error"] = "; ".join(filter(None, (error, _summarize(exc))))
        return _validate(UnknownMessage, data)


def parse_message(envelope: dict[str, Any]) -> Message:
    """Build the typed message of a ``message`` event envelope.

    Args:
        envelope: the decoded event body: ``{"shape", "item", "contact", "metadata"}``, or
            the flat form ``split_callback`` stores (the item with ``shape``, ``business``
            and ``contact`` added).

    Returns:
        An instance of the class for the item's ``type`` (see ``MESSAGE_TYPES``), a
        ``VoiceMessage`` for a Cloud voice note, or an ``UnknownMessage`` for a type that is
        not modelled or a payload that does not validate.

    Raises:
        TypeError: the envelope has no ``item`` object.
        pydantic.ValidationError: the item has no string ``id`` or ``from``;
            ``split_callback`` never stores such an item as a message.
    """
    envelope = _nested(envelope)
    item = _item(envelope)
    wire_type = item.get("type")
    if envelope.get("shape") in API_SHAPES and isinstance(wire_type, str):
        fast = MESSAGE_TYPES.get(wire_type)
        # An audio item may be a Cloud voice note, which the path below turns into a voice.
        if fast is not None and fast is not AudioMessage:
            message = _validate_whole(fast, item, envelope, with_contact=True)
            if message is not None:
                return message
    fields = _envelope_fields(envelope)
    fields["contact"] = _lenient(Contact, envelope.get("contact"))
    if not isinstance(wire_type, str):
        return _unknown(item, fields, "invalid", "type: missing or not a string")
    cls = MESSAGE_TYPES.get(wire_type)
    if cls is None:
        reason: UnknownReason = "unsupported" if wire_type in _UNSUPPORTED_TYPES else "unmodelled"
        return _unknown(item, fields, reason, None)
    data = {**item, **fields}
    if cls is AudioMessage:
        audio = item.get("audio")
        if isinstance(audio, dict) and audio.get("voice") is True:
            cls = VoiceMessage
            data["type"] = "voice"
            data["voice"] = audio
    try:
        return _validate(cls, data)
    except ValidationError as exc:
        return _unknown(item, fields, "invalid", _summarize(exc))


def parse_status(envelope: dict[str, Any]) -> Status:
    """Build the ``Status`` of a ``status`` event envelope.

    Fields that do not validate are left at their defaults, and the status keeps its raw
    form and a ``validation_error``, so a status is never lost to an odd field.

    Args:
        envelope: the decoded event body: ``{"shape", "item", "contact", "metadata"}``, or
            the flat form ``split_callback`` stores (the item with ``shape`` and ``business``
            added).

    Returns:
        The status; ``status`` is whatever string the provider sent.

    Raises:
        TypeError: the envelope has no ``item`` object.
        pydantic.ValidationError: the item has no string ``id`` or ``status``;
            ``split_callback`` never stores such an item as a status.
    """
    envelope = _nested(envelope)
    item = _item(envelope)
    if envelope.get("shape") in API_SHAPES:
        status = _validate_whole(Status, item, envelope, with_contact=False)
        if status is not None:
            return status
    data = {**item, **_envelope_fields(envelope)}
    try:
        return _validate(Status, data)
    except ValidationError as exc:
        _drop_failing(data, exc)
        data.setdefault("timestamp", "")
        data["validation_error"] = _summarize(exc)
        data["raw"] = item
        return _validate(Status, data)


# Every modelled message class, told apart by ``type`` inside the validator: validating a
# flat body straight from its JSON bytes skips building the decoded dicts and copying them,
# about half of what turning a stored event into a typed one costs.
_MESSAGE_FROM_JSON = TypeAdapter[Message](
    # Built from the table, so a class added there is validated here too.
    Annotated[Union[tuple(MESSAGE_TYPES.values())], Field(discriminator="type")]  # type: ignore[arg-type]  # noqa: UP007
).validator.validate_json
_STATUS_FROM_JSON = Status.__pydantic_validator__.validate_json
# Bodies of the nested form (events stored before bodies were flat, raw events, and items
# that have a key of their own named like an envelope field) start with this.
_NESTED_START = b'{"shape":'


def decode_message(body: bytes) -> Message:
    """The typed message of a stored ``message`` event body, as ``parse_message`` builds it.

    A flat body whose item validates as its type's class is validated straight from the
    bytes; anything else (a Cloud voice note, an unmodelled type, a payload that does not
    validate, the nested form) takes ``parse_message``'s lenient path.
    """
    if not body.startswith(_NESTED_START):
        try:
            message: Message = _MESSAGE_FROM_JSON(body)
        except ValidationError:
            pass
        else:
            # A Cloud voice note arrives as an audio; parse_message makes it a VoiceMessage.
            if not (isinstance(message, AudioMessage) and message.audio.voice is True):
                return message
    return parse_message(orjson.loads(body))


def decode_status(body: bytes) -> Status:
    """The ``Status`` of a stored ``status`` event body, as ``parse_status`` builds it."""
    if not body.startswith(_NESTED_START):
        try:
            status: Status = _STATUS_FROM_JSON(body)
        except ValidationError:
            pass
        else:
            return status
    return parse_status(orjson.loads(body))
