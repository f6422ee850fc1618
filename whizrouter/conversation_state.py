"""``ConversationState``: the handle behind ``ctx.state``, one per handler run.

It loads the conversation's state on first use (a bot that never touches ``ctx.state`` reads
nothing), keeps every change in itself (the handler reads its own writes), and hands the
dispatcher one ``StateWrite`` when the run succeeds: the inbox commits it together with the
event's acknowledgement. A run that raises leaves no change behind: the dispatcher drops the
handle, and the retry loads the state as it was.

Where the state comes from (``StateSource``): a write settled by an earlier event of the
conversation whose acknowledgement is not committed yet, else the inbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import BaseModel

from whizrouter.errors import WhizrouterError
from whizrouter.inbox.stored_state import NOT_CACHED, NotCached, StateWrite, StoredState
from whizrouter.state import State

__all__ = ["ConversationState", "StateAlreadySettled", "StateSource"]

ModelT = TypeVar("ModelT", bound=BaseModel)


class StateAlreadySettled(WhizrouterError):
    """This event's state write was committed before a crash cut its acknowledgement short:
    the dispatcher acknowledges the event without running it again (nothing to do)."""


class StateSource(Protocol):
    """Where a handle loads a conversation's state from (the dispatcher's ``StateOverlay``)."""

    #: The newest settled write of the conversation not yet committed, or None.
    pending: Callable[[str], StateWrite | None]

    #: The conversation's committed state, or None.
    load: Callable[[str], Awaitable[StoredState | None]]

    #: ``load``'s answer when it is in memory, else ``NOT_CACHED``.
    cached: Callable[[str], StoredState | NotCached | None]


#: Values copied as they are: immutable, and JSON as they stand (bool is an int).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json_copy(value: dict[str, Any], what: str) -> dict[str, Any]:
    """A copy of a JSON object; raises TypeError for what JSON cannot hold."""
    scalars = _SCALARS
    for item in value.values():
        if type(item) not in scalars:
            break
    else:  # the usual case, flat data: a shallow copy is a full one (no serialising)
        return dict(value)
    try:
        copied: dict[str, Any] = orjson.loads(orjson.dumps(value))
    except TypeError as exc:
        raise TypeError(
            f"conversation state {what} must be JSON (str, int, float, bool, None, lists and "
            f"dicts with str keys): {exc}; store a model with ctx.state.save(model)"
        ) from None
    return copied


class ConversationState:
    """A conversation's state as one handler run sees and changes it (``ctx.state``).

    Args:
        source: where the state is loaded from.
        conversation: whose state.
        seq: the event being handled.
        replayed: the event may have run before (a retry or a replay after a crash): a state
            this very event already wrote means it was settled, and it is not run again.
    """

    __slots__ = (
        "_after",
        "_base",
        "_data",
        "_dirty",
        "_loaded",
        "_replayed",
        "_seq",
        "_source",
        "_state",
        "conversation",
        "stale",
    )
    _state: str | None
    _data: dict[str, Any]
    _base: int
    _after: StateWrite | None

    def __init__(self, source: StateSource, conversation: str, seq: int, replayed: bool) -> None:
        self._source = source
        self.conversation = conversation
        self._seq = seq
        self._replayed = replayed
        # ``_state``, ``_data``, ``_base`` and ``_after`` are set by ``_load``, which every
        # method runs first: a handle costs little to make, and nothing to a run that never
        # uses it.
        self._loaded = False
        self._dirty = False
        #: This event's write was committed already (see ``StateAlreadySettled``).
        self.stale = False

    def _loaded_now(self) -> bool:
        """Load from memory when the state is there (a settled write not committed yet, or
        what the inbox remembers); False: ``_load`` must ask the inbox. Every method runs one
        of them first: no coroutine for the usual read, from memory."""
        self._base = 0
        self._after = None
        pending = self._source.pending(self.conversation)
        if pending is not None:
            self._after = pending
            self._state, self._data = pending.state, pending.data
        else:
            stored = self._source.cached(self.conversation)
            if stored is NOT_CACHED:
                return False
            self._take(stored)
        self._loaded = True
        return True

    async def _load(self) -> None:
        self._take(await self._source.load(self.conversation))
        self._loaded = True

    def _take(self, stored: StoredState | None) -> None:
        if stored is None:
            self._state, self._data = None, {}
            return
        if self._replayed and stored.seq >= self._seq:
            self.stale = True
            raise StateAlreadySettled(
                f"event {self._seq} of conversation {self.conversation} already "
                "committed its state; it is acknowledged without running again"
            )
        self._state, self._data, self._base = stored.state, stored.data, stored.revision

    async def get(self) -> str | None:
        """The current state's full name (``"Signup.email"``), or None."""
        if not self._loaded and not self._loaded_now():
            await self._load()
        return self._state

    async def set(self, state: State | str | None) -> None:
        """Move the conversation to ``state`` (a ``State`` or its name); None leaves every
        state, keeping the data."""
        if isinstance(state, State):
            name: str | None = state.name
        elif state is None or isinstance(state, str):
            name = state
        else:
            raise TypeError(f"ctx.state.set() takes a State, a name or None, not {state!r:.40}")
        if name == "" or name == "*":
            raise ValueError(f"{name!r} cannot be a state name")
        if not self._loaded and not self._loaded_now():
            await self._load()
        self._state = name
        self._dirty = True

    async def data(self) -> dict[str, Any]:
        """A copy of the state's data (a JSON object)."""
        if not self._loaded and not self._loaded_now():
            await self._load()
        data = self._data
        for item in data.values():  # inlined ``_json_copy``'s check: this runs per event
            if type(item) not in _SCALARS:
                return _json_copy(data, "data")
        return dict(data)

    async def update(self, **values: Any) -> None:
        """Set keys of the data; each value must be JSON."""
        if not self._loaded and not self._loaded_now():
            await self._load()
        for item in values.values():  # ``values`` is a new dict: only nested values are copied
            if type(item) not in _SCALARS:
                values = _json_copy(values, "values")
                break
        self._data = {**self._data, **values}
        self._dirty = True

    async def clear(self) -> None:
        """Leave every state and forget the data."""
        if not self._loaded and not self._loaded_now():
            await self._load()
        self._state, self._data = None, {}
        self._dirty = True

    async def load(self, model: type[ModelT]) -> ModelT:
        """The data validated as ``model`` (a pydantic model; missing keys take its defaults).

        Raises:
            pydantic.ValidationError: the data does not fit the model.
        """
        if not self._loaded and not self._loaded_now():
            await self._load()
        return model.model_validate(self._data)

    async def save(self, model: BaseModel) -> None:
        """Replace the data with ``model``'s fields (as JSON)."""
        if not self._loaded and not self._loaded_now():
            await self._load()
        self._data = model.model_dump(mode="json")
        self._dirty = True

    def write(self) -> StateWrite | None:
        """What the run changed, for the settlement; None when it changed nothing."""
        if not self._dirty or self.stale:
            return None
        return StateWrite(
            self.conversation, self._state, self._data, self._seq, self._base, self._after
        )

    def __repr__(self) -> str:
        shown = repr(self._state) if self._loaded else "not loaded"
        return f"ConversationState({self.conversation!r}, state={shown})"
