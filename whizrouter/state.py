"""``State`` and ``StateGroup``: the named steps of a multi-step conversation.

A ``StateGroup`` subclass names its states after its class and attributes::

    class Signup(StateGroup):
        name = State()    # "Signup.name"
        email = State()   # "Signup.email"

A conversation is in at most one state at a time (``ctx.state``, see
``whizrouter.conversation_state``); handlers route on it with ``state=`` (``F.state``). Only
the full name is stored, so renaming a group or an attribute strands the conversations that
were in it (they match ``state="*"``, never the new name).

This module also holds the state the router is matching against while it resolves an event
(``matching_state``): the dispatcher sets it around ``Router.resolve``, and the state filters
read it, so the filters stay plain predicates over the event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, ClassVar, Final

__all__ = ["ANY_STATE", "NO_FILTER", "NoFilter", "State", "StateGroup", "StateMatch", "state_names"]

#: ``state="*"``: any state, but not none.
ANY_STATE: Final = "*"


class State:
    """One named step: ``State()`` inside a ``StateGroup``, or ``State("name")`` alone.

    Equal to its full name as a string, so ``await ctx.state.get() == Signup.name`` works.
    """

    __slots__ = ("name",)

    def __init__(self, name: str | None = None) -> None:
        self.name = name or ""

    def __set_name__(self, owner: type, attribute: str) -> None:
        # The full name comes from the group that declares it.
        if not self.name:
            self.name = f"{owner.__name__}.{attribute}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, State):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"State({self.name!r})"


class StateGroup:
    """A set of states named ``"<Class>.<attribute>"``; as a filter, any of them.

    Subclass it and declare ``State()`` attributes; ``Group.states`` lists them in order.
    """

    states: ClassVar[tuple[State, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = [value for value in vars(cls).values() if isinstance(value, State)]
        cls.states = (*cls.states, *found)


#: What ``state=`` and ``F.state`` take: a state, a group, a name, ``"*"``, None, or a list.
StateMatch = State | type[StateGroup] | str | None | Iterable[State | type[StateGroup] | str | None]


def _names_of(value: State | type[StateGroup] | str | None) -> Iterator[str | None]:
    if value is None or isinstance(value, str):
        yield value
    elif isinstance(value, State):
        if not value.name:
            raise ValueError("a State() outside a StateGroup needs a name: State('waiting')")
        yield value.name
    elif isinstance(value, type) and issubclass(value, StateGroup):
        if not value.states:
            raise ValueError(f"the state group {value.__name__} declares no State()")
        for state in value.states:
            yield state.name
    else:
        raise TypeError(
            f"state= takes a State, a StateGroup, a state name, '*', None or a list of "
            f"those, not {type(value).__name__} {value!r:.40}"
        )


def state_names(match: StateMatch) -> tuple[frozenset[str], bool, bool]:
    """What a ``state=`` value accepts: ``(names, any_state, no_state)``.

    Raises:
        TypeError: the value is of no accepted kind.
        ValueError: a ``State`` without a name, or a group without states.
    """
    single = match is None or isinstance(match, str | State | type)
    if not single and not isinstance(match, Iterable):
        raise TypeError(
            f"state= takes a State, a StateGroup, a state name, '*', None or a list of "
            f"those, not {type(match).__name__} {match!r:.40}"
        )
    values: Iterable[Any] = [match] if single else list(match)  # type: ignore[arg-type]
    names: set[str] = set()
    any_state = no_state = False
    for value in values:
        for name in _names_of(value):
            if name is None:
                no_state = True
            elif name == ANY_STATE:
                any_state = True
            else:
                names.add(name)
    return frozenset(names), any_state, no_state


class NoFilter:
    """The default of ``state=`` on the decorators: match whatever the state is (None would
    mean "no state")."""

    def __repr__(self) -> str:
        return "NO_FILTER"


#: ``state=``'s default: no state filter.
NO_FILTER: Final = NoFilter()


class _Unrouted:
    """``matching_state``'s value outside routing: a state filter then matches nothing."""

    def __repr__(self) -> str:
        return "<not routing>"


UNROUTED: Final = _Unrouted()

#: The conversation's state name (None: no state) while the dispatcher resolves an event.
matching_state: ContextVar[str | _Unrouted | None] = ContextVar(
    "whizrouter_matching_state", default=UNROUTED
)
