"""Recognise both callback shapes and split one callback into raw events.

This runs before the 200, so it only walks dicts: no model is built here. Each message and
status becomes an event keyed for dedupe (``m:<id>``, ``s:<id>:<status>``) and ordered by its
conversation; whatever cannot be read as one becomes a ``raw`` event, so nothing the provider
sent is dropped. Each event's body is written by ``whizrouter.stored_body``, which documents
its format and reads it back for the dispatcher.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from whizrouter.defaults import ApiShape
from whizrouter.inbox.base import RawEvent
from whizrouter.stored_body import added_fields, message_body, raw_body, status_body

_SORTED = orjson.OPT_SORT_KEYS


def _raw_event(shape: ApiShape, item: dict[str, Any], reason: str) -> RawEvent:
    digest = hashlib.sha256(orjson.dumps(item, option=_SORTED)).hexdigest()
    body = raw_body(shape, item, reason)
    return RawEvent(kind="raw", key="r:" + digest, conversation="raw:" + digest[:16], body=body)


#: The deepest JSON nesting a callback may have. Events are validated from their stored JSON
#: later, and pydantic stops at about 200 levels: deeper, an event answered 200 could never
#: be read. Real callbacks nest about 10 levels.
MAX_NESTING = 100


def nested_deeper_than(payload: Any, body: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether the parsed JSON ``payload`` (of ``body``) nests more than ``limit`` levels."""
    # Fewer brackets than the limit cannot nest deeper; counting them is cheap, walking is not.
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    containers: list[tuple[Any, int]] = [(payload, 1)]  # an object or array, and its level
    while containers:
        value, depth = containers.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        containers.extend(
            (child, depth + 1) for child in children if isinstance(child, dict | list)
        )
    return False


#: The longest message or status id (and sender id) stored as such; the provider's are under
#: 100 characters. A longer one would sit in the dedupe window, in memory too, for 7 days.
MAX_ID_LENGTH = 512


def _usable_ids(first: Any, second: Any) -> bool:
    """Whether both can key dedupe: non-empty strings of sane length without NUL (which
    SQLite's JSON functions cut a string at, so two ids would share a key). Two at once, as
    each message (id, sender) and status (id, status) has: one call per event."""
    return (
        isinstance(first, str)
        and isinstance(second, str)
        and 0 < len(first) <= MAX_ID_LENGTH
        and 0 < len(second) <= MAX_ID_LENGTH
        and "\x00" not in first
        and "\x00" not in second
    )


def _contact_for(contacts: Any, wa_id: str) -> dict[str, Any] | None:
    if not isinstance(contacts, list):
        return None
    for contact in contacts:
        if isinstance(contact, dict) and contact.get("wa_id") == wa_id:
            return contact
    # A single sender entry whose wa_id differs (a number change) still names the sender.
    if len(contacts) == 1 and isinstance(contacts[0], dict):
        return contacts[0]
    return None


#: Where a Cloud ``value`` sat: the callback's ``object``, its entry's ``id``, the change.
CloudPlace = tuple[Any, Any, dict[str, Any]]


def _wrap(place: CloudPlace | None, piece: dict[str, Any]) -> dict[str, Any]:
    """A callback-shaped object around a stray piece of a callback, for a raw event: the piece
    itself on-premises; in Cloud, an envelope holding the piece's change, whose ``value``
    keeps its other fields (``metadata``, ``messaging_product``)."""
    if place is None:
        return piece
    obj, entry_id, change = place
    value = dict(change.get("value") or {})
    for name in ("contacts", "messages", "statuses", "errors"):
        value.pop(name, None)
    value.update(piece)
    return {
        "object": obj,
        "entry": [{"id": entry_id, "changes": [{"field": "messages", "value": value}]}],
    }


def _split_value(
    shape: ApiShape,
    value: dict[str, Any],
    metadata: dict[str, Any] | None,
    place: CloudPlace | None,
    out: list[RawEvent],
) -> None:
    """Split one on-premises body or one Cloud ``value`` object (from ``place``) into
    ``out``."""
    contacts = value.get("contacts")
    messages = value.get("messages")
    # What each body adds after its item's own keys: the same for every event of the value.
    added = added_fields(shape, metadata)
    if messages is not None:
        if not isinstance(messages, list):
            out.append(
                _raw_event(shape, _wrap(place, {"messages": messages}), "messages is not a list")
            )
        else:
            for message in messages:
                # Any: what the JSON holds; _usable_ids tells whether both are strings.
                sender: Any = message.get("from") if isinstance(message, dict) else None
                message_id: Any = message.get("id") if sender is not None else None
                if not _usable_ids(message_id, sender):
                    out.append(
                        _raw_event(
                            shape,
                            _wrap(place, {"messages": [message]}),
                            f"message without a usable id and from (strings of 1 to "
                            f"{MAX_ID_LENGTH} characters, no NUL)",
                        )
                    )
                    continue
                body = message_body(message, added, _contact_for(contacts, sender))
                out.append(RawEvent("message", "m:" + message_id, sender, body))
    statuses = value.get("statuses")
    if statuses is not None:
        if not isinstance(statuses, list):
            out.append(
                _raw_event(shape, _wrap(place, {"statuses": statuses}), "statuses is not a list")
            )
        else:
            for status in statuses:
                status_id: Any = status.get("id") if isinstance(status, dict) else None
                state: Any = status.get("status") if status_id is not None else None
                if not _usable_ids(status_id, state):
                    out.append(
                        _raw_event(
                            shape,
                            _wrap(place, {"statuses": [status]}),
                            f"status without a usable id and status (strings of 1 to "
                            f"{MAX_ID_LENGTH} characters, no NUL)",
                        )
                    )
                    continue
                recipient = status.get("recipient_id")
                if not isinstance(recipient, str):
                    nested = status.get("message")
                    recipient = nested.get("recipient_id") if isinstance(nested, dict) else None
                conversation = recipient if isinstance(recipient, str) else "status:" + status_id
                key = "s:" + status_id + ":" + state
                out.append(RawEvent("status", key, conversation, status_body(status, added)))
    errors = value.get("errors")
    if errors is not None:
        out.append(_raw_event(shape, _wrap(place, {"errors": errors}), "errors"))


def split_callback(payload: dict[str, Any], number: str | None = None) -> list[RawEvent]:
    """Split a parsed callback body into raw events, in the order the provider listed them.

    Never raises for a JSON object: whatever cannot be read as a message or status becomes a
    ``raw`` event, so nothing the provider sent is dropped.

    Args:
        payload: the callback body.
        number: the receiving number an on-premises callback was posted for (the name of
            its webhook path, ``/webhook/<name>``), kept in each message's and status's body
            as ``business.number``; a Cloud callback names its number itself.
    """
    out: list[RawEvent] = []
    if payload.get("object") == "whatsapp_business_account" or "entry" in payload:
        entries = payload.get("entry")
        if not isinstance(entries, list):
            return [_raw_event("cloud", payload, "entry is not a list")]
        obj = payload.get("object", "whatsapp_business_account")
        for entry in entries:
            changes = entry.get("changes") if isinstance(entry, dict) else None
            if not isinstance(changes, list):
                out.append(
                    _raw_event(
                        "cloud", {"object": obj, "entry": [entry]}, "entry without a changes list"
                    )
                )
                continue
            entry_id = entry.get("id")
            for change in changes:
                value = change.get("value") if isinstance(change, dict) else None
                if (
                    not isinstance(change, dict)
                    or change.get("field") != "messages"
                    or not isinstance(value, dict)
                ):
                    out.append(
                        _raw_event(
                            "cloud",
                            {"object": obj, "entry": [{"id": entry_id, "changes": [change]}]},
                            "not a messages change",
                        )
                    )
                    continue
                metadata = value.get("metadata")
                _split_value(
                    "cloud",
                    value,
                    metadata if isinstance(metadata, dict) else None,
                    (obj, entry_id, change),
                    out,
                )
        return out
    if not (
        "messages" in payload
        or "statuses" in payload
        or "contacts" in payload
        or "errors" in payload
    ):
        return [_raw_event("onprem", payload, "neither an on-premises nor a Cloud callback")]
    _split_value("onprem", payload, None if number is None else {"number": number}, None, out)
    if not out:
        # Only ``contacts``, or empty arrays: still acknowledged, still visible to on_raw.
        out.append(_raw_event("onprem", payload, "no messages, statuses or errors"))
    return out
