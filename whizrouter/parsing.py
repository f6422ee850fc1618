"""Parsing part by part: a provider's item and its envelope parts become a typed event.

``whizrouter.stored_body`` validates a stored event in one call; what that call does not build
comes here, and is built leniently instead of raising:

- a type whizrouter does not model, or a payload that does not validate, becomes an
  ``UnknownMessage`` that keeps the item in ``raw`` and says why (``reason``,
  ``validation_error``);
- a status keeps what validates, leaves the rest at its defaults and says what did not;
- the envelope parts (our number, the sender's contact) are validated on their own, so a
  malformed one is left out instead of spoiling the event, and a missing or unknown shape is
  told from them;
- a Cloud voice note, an ``audio`` with ``voice: true``, becomes a ``VoiceMessage``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from whizrouter.defaults import API_SHAPES
from whizrouter.events.media_messages import AudioMessage, VoiceMessage
from whizrouter.events.message import Message
from whizrouter.events.registry import MESSAGE_TYPES
from whizrouter.events.statuses import Status
from whizrouter.events.unknown import UnknownMessage, UnknownReason
from whizrouter.events.wire import BusinessNumber, Contact, WireModel

__all__ = ["message_from_parts", "status_from_parts", "validate"]

_UNSUPPORTED_TYPES = frozenset({"unknown", "unsupported", "ephemeral"})
_MAX_REPORTED_ERRORS = 5

ModelT = TypeVar("ModelT", bound=WireModel)


def validate(cls: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Validate decoded JSON as if from its bytes, as decoding a stored body does.

    Pydantic turns a float arriving in a string field into text one way from JSON
    (``1.0`` becomes ``"1"``) and another from Python (``"1.0"``); validating JSON here too
    makes every path build the same event from the same stored body.
    """
    try:
        body = orjson.dumps(data)
    except orjson.JSONEncodeError:  # not decoded JSON (a hand-made dict): validate as is
        return cls.__pydantic_validator__.validate_python(data)  # type: ignore[no-any-return]
    return cls.__pydantic_validator__.validate_json(body)  # type: ignore[no-any-return]


def message_from_parts(item: dict[str, Any], shape: Any, metadata: Any, contact: Any) -> Message:
    """Build the typed message of ``item``, the message object as the provider sent it.

    Args:
        item: the message object.
        shape: the callback's shape; told from ``metadata`` when not a known shape.
        metadata: the Cloud ``value.metadata`` (our number), or None.
        contact: the sender's entry of the callback's ``contacts``, or None.

    Returns:
        An instance of the class for the item's ``type`` (see ``MESSAGE_TYPES``), a
        ``VoiceMessage`` for a Cloud voice note, or an ``UnknownMessage`` for a type that is
        not modelled or a payload that does not validate.

    Raises:
        pydantic.ValidationError: the item has no string ``id`` or ``from``.
    """
    fields = _envelope_fields(shape, metadata)
    fields["contact"] = _lenient(Contact, contact)
    wire_type = item.get("type")
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
        return validate(cls, data)
    except ValidationError as exc:
        return _unknown(item, fields, "invalid", _summarize(exc))


def status_from_parts(item: dict[str, Any], shape: Any, metadata: Any) -> Status:
    """Build the ``Status`` of ``item``, the status object as the provider sent it.

    Fields that do not validate are left at their defaults, and the status keeps ``item`` in
    ``raw`` and a ``validation_error``, so a status is never lost to an odd field.

    Raises:
        pydantic.ValidationError: the item has no string ``id`` or ``status``.
    """
    data = {**item, **_envelope_fields(shape, metadata)}
    try:
        return validate(Status, data)
    except ValidationError as exc:
        _drop_failing(data, exc)
        data.setdefault("timestamp", "")
        data["validation_error"] = _summarize(exc)
        data["raw"] = item
        return validate(Status, data)


def _lenient(model: type[WireModel], data: Any) -> Any:
    """Validate an envelope part on its own, so a malformed one never spoils the event."""
    if not isinstance(data, dict):
        return None
    try:
        return validate(model, data)
    except ValidationError:
        return None


def _envelope_fields(shape: Any, metadata: Any) -> dict[str, Any]:
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
        return validate(UnknownMessage, data)
    except ValidationError as exc:
        # Some base field is malformed too: leave it out (``raw`` still has it) and say so.
        _drop_failing(data, exc)
        data.setdefault("timestamp", "")
        data.setdefault("type", "unknown")
        data["reason"] = "invalid"
        data["validation_error"] = "; ".join(filter(None, (error, _summarize(exc))))
        return validate(UnknownMessage, data)
