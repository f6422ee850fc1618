"""``Router``: handlers registered by decorators, first match wins.

A router's own handlers are tried in registration order, then the routers it included, in
the order they were included. Registration closes when the app starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from whizrouter.errors import ConfigurationError, RegistrationClosedError
from whizrouter.filters import F, Filter, Predicate, TextChoice, as_filter
from whizrouter.registration_checks import (
    check_coroutine,
    check_message_annotation,
    check_status_annotation,
)
from whizrouter.state import NO_FILTER, NoFilter, StateMatch

if TYPE_CHECKING:
    from whizrouter.backoff import RetryPolicy
    from whizrouter.context import Context
    from whizrouter.events import Message, Status

HandlerKind = Literal["message", "status", "raw"]
M = TypeVar("M", bound="Message")
S = TypeVar("S", bound="Status")
Handler = Callable[[Any, "Context"], Awaitable[None]]
RawHandler = Callable[[dict[str, Any], "Context"], Awaitable[None]]
RawHandlerT = TypeVar("RawHandlerT", bound=RawHandler)


class MessageDecorator(Protocol):
    """What ``on_message(...)`` returns: registers ``async def h(message, ctx) -> None``."""

    def __call__(
        self, handler: Callable[[M, Context], Awaitable[None]]
    ) -> Callable[[M, Context], Awaitable[None]]: ...


class StatusDecorator(Protocol):
    """What ``on_status(...)`` returns: registers ``async def h(status, ctx) -> None``."""

    def __call__(
        self, handler: Callable[[S, Context], Awaitable[None]]
    ) -> Callable[[S, Context], Awaitable[None]]: ...


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """One registered handler: what it handles, when, and how failures are retried."""

    kind: HandlerKind
    callback: Handler
    filter: Filter | None
    name: str
    retry: RetryPolicy | None = None
    #: Seconds a run may take before it is cancelled (None: the app's ``handler_timeout``).
    timeout: float | None = None

    def matches(self, event: Any) -> bool:
        """Whether this handler wants ``event``."""
        return self.filter is None or self.filter(event)


def _combine(predicates: Iterable[Predicate]) -> Filter | None:
    combined: Filter | None = None
    for predicate in predicates:
        current = as_filter(predicate)
        combined = current if combined is None else combined & current
    return combined


def _handler_name(callback: Callable[..., Any]) -> str:
    module = getattr(callback, "__module__", "") or ""
    qualname = getattr(callback, "__qualname__", None) or repr(callback)
    return f"{module}.{qualname}" if module else qualname


class Router:
    """A group of handlers; include it in an app or another router to use it.

    Args:
        name: shown in logs; defaults to ``"router"``.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or "router"
        self._handlers: list[HandlerSpec] = []
        self._children: list[Router] = []
        self._frozen = False

    def _check_open(self, what: str) -> None:
        if self._frozen:
            raise RegistrationClosedError(
                f"{what} on router {self.name!r} came after the app started; register every "
                "handler and router before `async with app`, `app.run()` or `app.attach()`"
            )

    def _register(
        self,
        kind: HandlerKind,
        predicates: Iterable[Predicate],
        retry: RetryPolicy | None,
        callback: Handler,
        timeout: float | None = None,
    ) -> None:
        name = _handler_name(callback)
        self._check_open(f"registering {kind} handler {name!r}")
        check_coroutine(callback, name)
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise ConfigurationError(
                f"timeout={timeout!r} of handler {name!r} must be a positive number of seconds"
            )
        self._handlers.append(
            HandlerSpec(kind, callback, _combine(predicates), name, retry, timeout)
        )

    def on_message(
        self,
        *predicates: Predicate,
        type: str | Iterable[str] | None = None,
        text: TextChoice | Iterable[TextChoice] | None = None,
        from_: str | Iterable[str] | None = None,
        retry: RetryPolicy | None = None,
        number: str | Iterable[str] | None = None,
        state: StateMatch | NoFilter = NO_FILTER,
        timeout: float | None = None,
    ) -> MessageDecorator:
        """Register a handler for incoming messages.

        Args:
            *predicates: extra conditions: ``Filter`` objects or callables taking the message.
            type: message type(s) to accept (``"text"``, ``["image", "video"]``).
            text: exact text body, or a compiled regex searched in the body, or a list of
                those (any may match).
            from_: sender ``wa_id``(s) to accept.
            retry: this handler's retry policy on failure (default: the app's).
            number: our receiving number(s) to accept, by their names in ``numbers=``.
            state: the conversation's state(s) to accept (``F.state``): a ``State``, a
                ``StateGroup``, ``"*"`` (any), None (none), or a list; left out, any.
            timeout: seconds a run may take before it is cancelled and counted as failed
                (default: the app's ``handler_timeout``).

        Raises:
            ValueError: a ``type=`` value the provider never sends (a misspelling).
            TypeError: (when decorating) the handler is not an ``async def``, or its event
                annotation is a class ``type=`` never delivers.
        """
        filters = list(predicates)
        if not isinstance(state, NoFilter):
            filters.append(F.state(state))
        types = [type] if isinstance(type, str) else list(type) if type is not None else None
        if types is not None:
            filters.insert(0, F.type(types))
        if text is not None:
            filters.append(F.text(text))
        if from_ is not None:
            filters.append(F.from_(from_))
        if number is not None:
            filters.append(F.number(number))

        def decorator(
            handler: Callable[[M, Context], Awaitable[None]],
        ) -> Callable[[M, Context], Awaitable[None]]:
            check_message_annotation(handler, _handler_name(handler), types)
            self._register("message", filters, retry, handler, timeout)
            return handler

        return decorator

    def on_status(
        self,
        *predicates: Predicate,
        status: str | Iterable[str] | None = None,
        retry: RetryPolicy | None = None,
        number: str | Iterable[str] | None = None,
        state: StateMatch | NoFilter = NO_FILTER,
        timeout: float | None = None,
    ) -> StatusDecorator:
        """Register a handler for status updates of messages the bot sent.

        Args:
            *predicates: extra conditions: ``Filter`` objects or callables taking the status.
            status: status value(s) to accept (``"failed"``, ``["delivered", "read"]``).
            retry: this handler's retry policy on failure (default: the app's).
            number: our sending number(s) to accept, by their names in ``numbers=``.
            state: the conversation's state(s) to accept; see ``on_message``.
            timeout: seconds a run may take before it is cancelled (default: the app's).

        Raises:
            ValueError: a ``status=`` value the provider never sends (a misspelling).
            TypeError: (when decorating) the handler is not an ``async def``, or it is
                annotated with a message class.
        """
        filters = list(predicates)
        if not isinstance(state, NoFilter):
            filters.append(F.state(state))
        if status is not None:
            filters.insert(0, F.status(status))
        if number is not None:
            filters.append(F.number(number))

        def decorator(
            handler: Callable[[S, Context], Awaitable[None]],
        ) -> Callable[[S, Context], Awaitable[None]]:
            check_status_annotation(handler, _handler_name(handler))
            self._register("status", filters, retry, handler, timeout)
            return handler

        return decorator

    def on_raw(
        self,
        *predicates: Predicate,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Callable[[RawHandlerT], RawHandlerT]:
        """Register a handler for everything that is neither a message nor a status.

        It receives the raw JSON object: an out-of-band ``{"errors": [...]}`` callback, a Cloud
        change whose ``field`` is not ``messages`` (as a one-change Cloud envelope), or a piece
        of a callback whose fields had unexpected types. ``retry`` and ``timeout`` as for
        ``on_message``.
        """

        def decorator(handler: RawHandlerT) -> RawHandlerT:
            self._register("raw", predicates, retry, handler, timeout)
            return handler

        return decorator

    def include_router(self, router: Router) -> Router:
        """Search ``router``'s handlers after this one's own (and earlier inclusions)."""
        self._check_open(f"including router {router.name!r}")
        if router is self or self in router.walk():
            raise ValueError(f"including router {router.name!r} would create a cycle")
        self._children.append(router)
        return router

    def walk(self) -> Iterator[Router]:
        """This router and every router it includes, depth first."""
        yield self
        for child in self._children:
            yield from child.walk()

    def freeze(self) -> None:
        """Close registration on this router and the ones it includes."""
        for router in self.walk():
            router._frozen = True

    def thaw(self) -> None:
        """Open registration again (the app stopped; the next start reads the handlers anew)."""
        for router in self.walk():
            router._frozen = False

    def resolve(self, kind: HandlerKind, event: Any) -> HandlerSpec | None:
        """The first handler of ``kind`` that wants ``event``, or None."""
        for spec in self._handlers:
            if spec.kind == kind and spec.matches(event):
                return spec
        for child in self._children:
            found = child.resolve(kind, event)
            if found is not None:
                return found
        return None

    def replace_handlers(self, change: Callable[[HandlerSpec], HandlerSpec]) -> Callable[[], None]:
        """Replace every handler (here and in included routers) with ``change(handler)``,
        before the app starts: for wiring that adapts registered handlers as a whole (the
        test kit's ``BotTester`` keeps each handler's retry decisions but drops their waits).

        Returns:
            a function that puts the handlers there were before back, for once the app stopped.

        Raises:
            RegistrationClosedError: the app has started.
        """
        self._check_open("replacing handlers")
        before = [(router, router._handlers) for router in self.walk()]
        for router in self.walk():
            router._handlers = [change(spec) for spec in router._handlers]

        def restore() -> None:
            for router, handlers in before:
                router._handlers = handlers

        return restore

    def handlers(self) -> list[HandlerSpec]:
        """Every handler reachable from this router, in search order."""
        return [spec for router in self.walk() for spec in router._handlers]

    def handled_kinds(self) -> frozenset[HandlerKind]:
        """The kinds of event some handler reachable from this router takes."""
        return frozenset(spec.kind for spec in self.handlers())

    def reads_state(self) -> bool:
        """Whether some handler's filter looks at the conversation's state (``state=``)."""
        return any(spec.filter is not None and spec.filter.reads_state for spec in self.handlers())
