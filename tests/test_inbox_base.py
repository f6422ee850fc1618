"""The events of ``whizrouter.inbox.base``: ``StoredEvent`` is immutable however it is built."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from whizrouter.inbox import base
from whizrouter.inbox.base import EventKind, StoredEvent, build_stored_event


def test_stored_event_is_a_frozen_slotted_dataclass() -> None:
    event = StoredEvent(1, "message", "m:1", "491511111", b"{}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.attempts = 2  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_the_fast_builder_builds_the_same_frozen_event_as_the_constructor() -> None:
    fields: tuple[int, EventKind, str, str, bytes, int, float, bool] = (
        7, "status", "s:1:read", "491511111", b'{"a":1}', 2, 1700000000.5, True
    )  # fmt: skip
    built = build_stored_event(*fields)
    assert type(built) is StoredEvent
    assert built == StoredEvent(*fields)
    assert hash(built) == hash(StoredEvent(*fields))
    assert repr(built) == repr(StoredEvent(*fields))
    assert pickle.loads(pickle.dumps(built)) == built
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.maybe_ran = False  # type: ignore[misc]
    first = fields[:5]
    assert build_stored_event(*first) == StoredEvent(*first)


def test_a_changed_copy_leaves_the_original_as_it_was() -> None:
    event = build_stored_event(3, "message", "m:3", "491511111", b"{}")
    again = dataclasses.replace(event, attempts=4)
    assert (event.attempts, again.attempts) == (0, 4)
    assert type(again) is StoredEvent


def test_the_builders_draft_has_the_fields_of_stored_event_in_their_order() -> None:
    # The __class__ assignment needs the same slots; a field added to one only would fail
    # every build with a TypeError, this says why.
    draft = [(f.name, f.type) for f in dataclasses.fields(base._StoredEventDraft)]
    assert draft == [(f.name, f.type) for f in dataclasses.fields(StoredEvent)]


async def test_an_inbox_without_a_journal_keeps_nothing_by_default() -> None:
    from whizrouter.inbox.base import Inbox, JournalEntry
    from whizrouter.inbox.memory import MemoryInbox

    inbox = MemoryInbox()
    # The protocol's defaults, as a backend that does not override them has them.
    await Inbox.journal_record(inbox, "m:1", "#1", JournalEntry("hash", "wamid.1"))
    assert await Inbox.journal_entries(inbox, "m:1") == {}
    assert await inbox.journal_entries("m:1") == {}
