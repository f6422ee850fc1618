"""Filters: which events a handler wants.

A filter is a predicate over the typed event. Keyword shortcuts on the decorators build them
(``type=``, ``status=``, ``text=``, ``from_=``, ``number=``); any callable taking the event and
returning a bool works as a positional predicate; ``Filter`` objects compose with ``&``,
``|`` and ``~``::

    @app.on_message(F.type("text") & ~F.from_("15551230001"))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from whizrouter.numbers import number_of
from whizrouter.registration_checks import MESSAGE_TYPE_NAMES, STATUS_NAMES, check_choices
from whizrouter.state import UNROUTED, StateMatch, matching_state, state_names

Predicate = Callable[[Any], bool]
#: What ``text=`` compares a text body with: an exact string, or a regex searched in it.
TextChoice = str | re.Pattern[str]


class Filter:
    """A named predicate over an event that composes with ``&``, ``|`` and ``~``.

    Attributes:
        reads_state: the filter looks at the conversation's state (``F.state``), so the
            dispatcher loads it before routing; composed filters inherit it.
    """

    __slots__ = ("_description", "_predicate", "reads_state")

    def __init__(
        self, predicate: Predicate, description: str = "", *, reads_state: bool = False
    ) -> None:
        self._predicate = predicate
        self._description = description or getattr(predicate, "__name__", "predicate")
        self.reads_state = reads_state

    def __call__(self, event: Any) -> bool:
        """Whether ``event`` passes; a predicate that raises counts as no match."""
        try:
            return bool(self._predicate(event))
        except Exception:
            return False

    def __and__(self, other: Predicate) -> Filter:
        right = as_filter(other)
        reads = self.reads_state or right.reads_state
        return Filter(lambda e: self(e) and right(e), f"({self} & {right})", reads_state=reads)

    def __or__(self, other: Predicate) -> Filter:
        right = as_filter(other)
        reads = self.reads_state or right.reads_state
        return Filter(lambda e: self(e) or right(e), f"({self} | {right})", reads_state=reads)

    def __rand__(self, other: Predicate) -> Filter:
        # ``callable & F.type(...)``: a plain function on the left composes too.
        return as_filter(other) & self

    def __ror__(self, other: Predicate) -> Filter:
        return as_filter(other) | self

    def __invert__(self) -> Filter:
        return Filter(lambda e: not self(e), f"~{self}", reads_state=self.reads_state)

    def __str__(self) -> str:
        return self._description

    def __repr__(self) -> str:
        return f"Filter({self._description})"


def as_filter(predicate: Predicate) -> Filter:
    """Wrap a plain callable as a ``Filter`` (a ``Filter`` is returned as is)."""
    return predicate if isinstance(predicate, Filter) else Filter(predicate)


def _choices(value: str | Iterable[str]) -> frozenset[str]:
    return frozenset([value]) if isinstance(value, str) else frozenset(value)


class F:
    """Ready-made filters; each matches on one attribute of the event."""

    @staticmethod
    def type(value: str | Iterable[str]) -> Filter:
        """Messages of one type (``"text"``) or any of several (``["image", "video"]``).

        A message whose payload did not validate (an ``UnknownMessage`` with reason
        ``invalid``) does not match its nominal type, so a handler for ``"interactive"`` never
        meets an interactive message without its ``interactive`` object.

        Raises:
            ValueError: a value the provider never sends (a misspelling), with the valid ones.
        """
        wanted = _choices(value)
        check_choices("type", wanted, MESSAGE_TYPE_NAMES)
        return Filter(
            lambda e: (
                getattr(e, "type", None) in wanted and getattr(e, "reason", None) != "invalid"
            ),
            f"type in {sorted(wanted)}",
        )

    @staticmethod
    def status(value: str | Iterable[str]) -> Filter:
        """Statuses with one value (``"failed"``) or any of several.

        Raises:
            ValueError: a value the provider never sends (a misspelling), with the valid ones.
        """
        wanted = _choices(value)
        check_choices("status", wanted, STATUS_NAMES)
        return Filter(lambda e: getattr(e, "status", None) in wanted, f"status in {sorted(wanted)}")

    @staticmethod
    def from_(value: str | Iterable[str]) -> Filter:
        """Messages from one sender (``wa_id``) or any of several."""
        wanted = _choices(value)
        return Filter(lambda e: getattr(e, "from_", None) in wanted, f"from_ in {sorted(wanted)}")

    @staticmethod
    def number(value: str | Iterable[str]) -> Filter:
        """Events that came to one of our numbers (or any of several), by the name it has in
        ``numbers=``: the Cloud ``phone_number_id``, or the on-premises webhook path's name."""
        wanted = _choices(value)
        return Filter(lambda e: number_of(e) in wanted, f"number in {sorted(wanted)}")

    @staticmethod
    def text(value: TextChoice | Iterable[TextChoice]) -> Filter:
        """Text messages whose body equals a string or matches a compiled regex (``search``),
        or any of several of those (``["menu", "help", re.compile("^order")]``)."""
        choices: list[TextChoice] = [value] if isinstance(value, (str, re.Pattern)) else list(value)
        exact = frozenset(c for c in choices if isinstance(c, str))
        patterns = [c for c in choices if isinstance(c, re.Pattern)]
        if len(exact) + len(patterns) != len(choices):
            odd = next(c for c in choices if not isinstance(c, (str, re.Pattern)))
            raise TypeError(
                f"text= takes strings or compiled regexes, got {type(odd).__name__} {odd!r}"
            )

        def matches(event: Any) -> bool:
            body = getattr(getattr(event, "text", None), "body", None)
            if not isinstance(body, str):
                return False
            return body in exact or any(p.search(body) is not None for p in patterns)

        parts = [f"text == {text!r}" for text in sorted(exact)]
        parts += [f"text ~ {p.pattern!r}" for p in patterns]
        return Filter(matches, " | ".join(parts) or "text in []")

    @staticmethod
    def state(value: StateMatch) -> Filter:
        """Events of conversations in a state: a ``State``, a ``StateGroup`` (any of its
        states), a state name, ``"*"`` (any state), None (no state), or a list of those."""
        names, any_state, no_state = state_names(value)

        def matches(_: Any) -> bool:
            current = matching_state.get()
            if current is UNROUTED:
                return False  # not resolving through the dispatcher: no state to match
            if current is None:
                return no_state
            return any_state or current in names

        shown = sorted(names) + (["*"] if any_state else []) + (["None"] if no_state else [])
        return Filter(matches, f"state in {shown}", reads_state=True)
