"""Mistakes refused when a handler is registered, instead of a handler that never runs.

A misspelt ``type=`` or ``status=`` value would never match; a plain ``def`` handler would run
its side effects once per retry before failing; a handler annotated with an event class its
``type=`` filter can never deliver would never run, or run with an event it cannot read.
Each check raises with the valid values, or with what to write instead.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from whizrouter.events.message import Message
from whizrouter.events.registry import MESSAGE_TYPES
from whizrouter.events.statuses import Status
from whizrouter.events.unknown import UnknownMessage

#: Message types the provider sends that whizrouter has no class for: they arrive as an
#: ``UnknownMessage`` whose ``type`` is the wire one, so a handler may still filter on them.
UNMODELLED_TYPES = frozenset(
    {"unknown", "unsupported", "ephemeral", "edit", "revoke", "request_welcome"}
)
#: Every ``type=`` value a handler may filter on.
MESSAGE_TYPE_NAMES = frozenset(MESSAGE_TYPES) | UNMODELLED_TYPES
#: Every ``status=`` value the provider sends.
STATUS_NAMES = frozenset({"sent", "delivered", "read", "failed", "deleted", "warning", "played"})


def check_choices(keyword: str, given: Iterable[str], valid: frozenset[str]) -> None:
    """Refuse a ``keyword=`` value that is not one of ``valid``.

    Raises:
        ValueError: naming the value, the closest valid one and every valid one.
    """
    for value in given:
        if not isinstance(value, str):
            raise TypeError(f"{keyword}= takes strings, got {type(value).__name__} {value!r}")
        if value in valid:
            continue
        close = difflib.get_close_matches(value, valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"{keyword}={value!r} would never match: {hint}the provider sends "
            f"{', '.join(sorted(valid))}; for a value whizrouter does not list yet, filter with "
            f"a predicate instead, e.g. lambda event: event.{keyword} == {value!r}"
        )


def check_coroutine(handler: Callable[..., Any], name: str) -> None:
    """Refuse a handler that is not a coroutine function.

    Raises:
        TypeError: saying to write ``async def``.
    """
    # An object whose ``__call__`` is an ``async def`` is a coroutine function too.
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
        return
    raise TypeError(
        f"handler {name} is not a coroutine function: write it as `async def`, so the "
        "dispatcher can await it (a plain function would run its side effects on every "
        "retry before failing)"
    )


def _annotated_classes(handler: Callable[..., Any]) -> tuple[type, ...] | None:
    """The classes the handler's first parameter is annotated with, or None when that
    cannot be told (no annotation, ``Any``, a name that does not resolve)."""
    try:
        parameters = list(inspect.signature(handler).parameters.values())
        hints = typing.get_type_hints(handler)
    except Exception:  # an annotation naming something not importable here: no check
        return None
    if not parameters or parameters[0].name not in hints:
        return None
    annotation = hints[parameters[0].name]
    members = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    classes = tuple(member for member in members if isinstance(member, type) and member is not Any)
    return classes if len(classes) == len(members) else None


def _names(classes: Iterable[type]) -> str:
    return " | ".join(sorted({cls.__name__ for cls in classes}))


def check_message_annotation(
    handler: Callable[..., Any], name: str, wanted_types: Iterable[str] | None
) -> None:
    """Refuse a message handler whose annotated event class its ``type=`` filter can never
    deliver (or, with ``type=``, does not deliver for every type it names).

    Raises:
        TypeError: naming the classes the filter delivers and what to write instead.
    """
    annotated = _annotated_classes(handler)
    if annotated is None:
        return
    wanted = sorted(wanted_types) if wanted_types is not None else None
    if any(issubclass(Status, cls) and not issubclass(Message, cls) for cls in annotated):
        raise TypeError(
            f"message handler {name} takes a {_names(annotated)}, but on_message delivers "
            "messages: register it with on_status, or annotate it with a Message class"
        )
    delivered = {
        type_: MESSAGE_TYPES.get(type_, UnknownMessage)
        for type_ in wanted or [*MESSAGE_TYPES, "unknown"]
    }
    missed = [type_ for type_, cls in delivered.items() if not issubclass(cls, annotated)]
    if wanted is None and len(missed) < len(delivered):
        return  # some message can reach it; its other filters narrow the rest
    if not missed:
        return
    fits = sorted(type_ for type_, cls in MESSAGE_TYPES.items() if issubclass(cls, annotated))
    delivers = _names(delivered[type_] for type_ in missed)
    raise TypeError(
        f"message handler {name} takes a {_names(annotated)}, but "
        + (f"type={missed[0]!r}" if len(missed) == 1 else f"types {missed}")
        + f" delivers {delivers}: annotate it as {delivers}"
        + (f", or filter type={fits[0]!r}" if len(fits) == 1 else "")
    )


def check_status_annotation(handler: Callable[..., Any], name: str) -> None:
    """Refuse a status handler annotated with a message class.

    Raises:
        TypeError: saying to register it with ``on_message`` or annotate it ``Status``.
    """
    annotated = _annotated_classes(handler)
    if annotated is not None and not any(issubclass(Status, cls) for cls in annotated):
        raise TypeError(
            f"status handler {name} takes a {_names(annotated)}, but on_status delivers "
            "Status events: annotate it `status: Status`, or register it with on_message"
        )
