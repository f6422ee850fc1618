"""A conversation's state as inboxes store it, and the write an event's settlement carries.

Every backend stores the same record per conversation: the state name, its data (a JSON
object), the seq of the event whose settlement wrote it, and when. ``encode``/``decode`` are
the one JSON form (the NATS bucket's values, the CLI's output); the sqlite table keeps the
fields as columns.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

__all__ = [
    "NOT_CACHED",
    "NotCached",
    "StateWrite",
    "StoredState",
    "decode_state",
    "encode_state",
    "without_orphans",
]


class _Cache(enum.Enum):
    NOT_CACHED = enum.auto()


#: What ``Inbox.cached_state`` answers when the state is not in memory: ask ``load_state``.
NOT_CACHED: Final = _Cache.NOT_CACHED
NotCached = Literal[_Cache.NOT_CACHED]


# Not frozen: one is built per state write, and a frozen dataclass's __init__ costs about
# twice as much (each field through object.__setattr__), as RawEvent's comment measures.
@dataclass(slots=True)
class StoredState:
    """A conversation's committed state; treat it as read-only.

    Attributes:
        state: the state name, or None (data alone).
        data: its data, a JSON object; treat it as read-only.
        seq: the event whose settlement wrote it (0: written from outside, the CLI or a test).
        updated_at: Unix time of that write; the state expires ``state_ttl`` after it.
        revision: the backend's version of the record (a NATS KV revision; 0 elsewhere).
    """

    state: str | None
    data: dict[str, Any]
    seq: int = 0
    updated_at: float = 0.0
    revision: int = 0


class StateWrite(StoredState):
    """The state an event's handler left, written when the event is acknowledged.

    It is the record it leaves, too (a ``StoredState``: the memory inbox keeps it as is). A
    write whose ``state`` is None and whose ``data`` is empty deletes the record.

    Attributes:
        conversation: whose state.
        state, data, seq: the new state name (or None), its data, the event that wrote it.
        base: the record's ``revision`` when the handler read it (0: there was none); a
            backend that checks revisions refuses the write if the record changed since.
        after: the write, not committed yet, that the handler read instead of the stored
            record; its committed revision is this one's base (None once committed).
        revision: set by the backend once committed.
        updated_at: Unix time of the commit, set by the backend (0 until then).
        failed: set by the backend when it refused or could not commit the write.
    """

    __slots__ = ("after", "base", "conversation", "failed")

    def __init__(
        self,
        conversation: str,
        state: str | None,
        data: dict[str, Any],
        seq: int,
        base: int = 0,
        after: StateWrite | None = None,
    ) -> None:
        # By hand, not through StoredState's __init__: one call less for every write.
        self.conversation = conversation
        self.state = state
        self.data = data
        self.seq = seq
        self.updated_at = 0.0
        self.revision = 0
        self.base = base
        self.after = after
        self.failed = False

    @property
    def deletes(self) -> bool:
        """Whether the write removes the record (no state, no data)."""
        return self.state is None and not self.data

    def expected_revision(self) -> int | None:
        """The revision the record must still have for this write to apply; None when the
        write it followed failed (then this one must fail too)."""
        if self.after is None:
            return self.base
        return None if self.after.failed else self.after.revision

    def __repr__(self) -> str:
        return (
            f"StateWrite({self.conversation!r}, {self.state!r}, seq={self.seq}, "
            f"failed={self.failed})"
        )


def without_orphans(
    seqs: Sequence[int], writes: Sequence[StateWrite]
) -> tuple[Sequence[int], Sequence[StateWrite]]:
    """The acks and writes to commit, leaving out (and marking failed) each write that read
    one whose commit failed, with its event: that event must run again after the one before
    it, not commit on a state that never was."""
    # Attribute tests, not expected_revision(): this runs for every write of every batch.
    orphans = {w.seq for w in writes if w.after is not None and w.after.failed}
    if not orphans:
        return seqs, writes
    for write in writes:
        if write.seq in orphans:
            write.failed = True
    return [s for s in seqs if s not in orphans], [w for w in writes if w.seq not in orphans]


def encode_state(state: str | None, data: dict[str, Any], seq: int, updated_at: float) -> bytes:
    """The one JSON form of a record."""
    return orjson.dumps({"state": state, "data": data, "seq": seq, "at": updated_at})


def decode_state(raw: bytes, revision: int = 0) -> StoredState:
    """Read back what ``encode_state`` wrote.

    Raises:
        ValueError: the bytes are not such a record.
    """
    value = orjson.loads(raw)
    if not isinstance(value, dict) or not isinstance(value.get("data"), dict):
        raise ValueError("not a conversation state record")
    state = value.get("state")
    return StoredState(
        state if isinstance(state, str) else None,
        value["data"],
        int(value.get("seq") or 0),
        float(value.get("at") or 0.0),
        revision,
    )
