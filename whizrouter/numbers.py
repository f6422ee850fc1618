"""Several numbers: each receiving number answered with its own provider key.

A 360dialog-style provider issues one API key per phone number. ``WhizRouter(numbers=...)``
(or ``WHIZARD_NUMBERS``) maps each receiving number to a :class:`Number`: its key, and its
base URL and API shape where they differ from the app's. What tells the numbers apart:

* Cloud shape: the callback's ``metadata.phone_number_id``, the name of the number here; every
  number may post to the same ``/webhook``.
* on-premises shape: nothing in the callback, so each number posts to its own path,
  ``/webhook/<name>``, and the receiver records the name in each stored event
  (``business.number``): the event knows its number when it is handled, even after a restart.

:class:`Numbers` builds one :class:`~whizrouter.client.WhizardClient` per number and swaps it
into the context of each event of that number, so replies, mark-read and media use that
number's key. An event for a number that is not configured is dead-lettered with an
:class:`~whizrouter.errors.UnknownNumberError` naming the setting, never answered with another
number's key. An app without numbers builds none of this and pays nothing for it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, final
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from pydantic import SecretStr

from whizrouter.client import WhizardClient
from whizrouter.defaults import API_SHAPES, ApiShape
from whizrouter.errors import ConfigurationError, UnknownNumberError
from whizrouter.receiver import Receiver
from whizrouter.settings import NUMBERS_ENV, Settings, check_base_url

if TYPE_CHECKING:
    from whizrouter.context import Context
    from whizrouter.inbox.base import StoredEvent

__all__ = [
    "NUMBER_NAME",
    "Number",
    "Numbers",
    "number_in_path",
    "number_of",
    "number_webhook_url",
]

log = logging.getLogger("whizrouter.numbers")

#: What a number's name may be: a Cloud ``phone_number_id`` (digits), or an on-premises name
#: that becomes a path segment of the webhook (``/webhook/sales``; not ``.`` or ``..``).
NUMBER_NAME: Final = re.compile(r"(?!\.\.?$)[A-Za-z0-9_.-]{1,64}")
#: The same, as an aiohttp route pattern for ``/webhook/{number}``.
NUMBER_ROUTE: Final = r"{number:[A-Za-z0-9_.\-]{1,64}}"
#: Where a number can be configured, for messages.
_SETTING: Final = f"numbers= or {NUMBERS_ENV}"
#: The fields a number's JSON object may have.
_FIELDS: Final = frozenset(("api_key", "base_url", "shape"))


def number_in_path(webhook_path: str, path: str) -> str | None:
    """The number an on-premises callback's path names (``<webhook_path>/<name>``), or None.

    For the servers that route by hand (``whizrouter run``, the ASGI app); an aiohttp app
    routes ``NUMBER_ROUTE`` instead.
    """
    prefix = webhook_path.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    name = path[len(prefix) :]
    return name if NUMBER_NAME.fullmatch(name) else None


Decoder = Callable[["StoredEvent"], tuple[Any, Any]]
ContextFactory = Callable[["StoredEvent", Any, Any, int], "Context"]


@final
class Number:
    """One receiving number's provider account: its key, base URL and API shape.

    Args:
        api_key: the number's own provider key; never shown in ``repr`` or logs.
        base_url: its API base URL; default the app's (``WHIZARD_BASE_URL``).
        shape: its API shape, ``"onprem"`` or ``"cloud"``; default the app's
            (``WHIZARD_API_SHAPE``).

    Raises:
        ConfigurationError: the key is empty or has a line break, the base URL is not an
            http(s) URL, or the shape is unknown.
    """

    __slots__ = ("_api_key", "base_url", "shape")

    def __init__(
        self,
        api_key: str | SecretStr,
        base_url: str | None = None,
        shape: ApiShape | None = None,
    ) -> None:
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        value = key.get_secret_value()
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError("a number's api_key is empty; give each number its own key")
        if any(ch in value for ch in "\r\n\x00"):
            raise ConfigurationError("a number's api_key contains a line break")
        if base_url is not None:
            check_base_url(base_url)
        if shape is not None and shape not in API_SHAPES:
            raise ConfigurationError(
                f"a number's shape must be one of {', '.join(map(repr, API_SHAPES))}, not {shape!r}"
            )
        self._api_key = key
        self.base_url = base_url.rstrip("/") if base_url is not None else None
        self.shape: ApiShape | None = shape

    @property
    def api_key(self) -> SecretStr:
        """The number's key, as a ``SecretStr`` (``.get_secret_value()`` to read it)."""
        return self._api_key

    def __repr__(self) -> str:
        return f"Number(api_key='**********', base_url={self.base_url!r}, shape={self.shape!r})"


def number_of(event: Any) -> str | None:
    """The name of the number an event came to, or None when it names none.

    Cloud: its ``business.phone_number_id`` (the callback's ``metadata``); on-premises: the
    name of the webhook path it was posted to (``business.number``). A raw event (a dict)
    names none.
    """
    business = getattr(event, "business", None)
    if business is None:
        return None
    found: str | None = business.phone_number_id
    return found if found is not None else business.number


def number_webhook_url(webhook_url: str, name: str, shape: ApiShape) -> str:
    """The URL a number's webhook is registered at: ``webhook_url`` itself in Cloud (the
    callback names the number), ``webhook_url`` + ``/<name>`` on-premises."""
    if shape == "cloud":
        return webhook_url
    parts = urlsplit(webhook_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + name))


def _number(name: object, value: object) -> Number:
    """The ``Number`` a configured entry gives: a ``Number``, a key, or a JSON object."""
    if not isinstance(name, str) or NUMBER_NAME.fullmatch(name) is None:
        raise ConfigurationError(
            f"number {name!r} ({_SETTING}) is not a usable name: use the Cloud "
            "phone_number_id, or on-premises a name of letters, digits, '.', '_' or '-' (at "
            "most 64), which becomes its webhook path /webhook/<name>"
        )
    if isinstance(value, Number):
        return value
    if isinstance(value, str | SecretStr):
        return Number(value)
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"number {name!r} ({_SETTING}) must be its key or an object with api_key, "
            f"base_url and shape, not {type(value).__name__}"
        )
    unknown = sorted(str(field) for field in value if field not in _FIELDS)
    if unknown:
        raise ConfigurationError(
            f"number {name!r} ({_SETTING}) has unknown fields {unknown}; it takes {sorted(_FIELDS)}"
        )
    api_key, base_url, shape = value.get("api_key"), value.get("base_url"), value.get("shape")
    if not isinstance(api_key, str) or not isinstance(base_url, str | None):
        raise ConfigurationError(
            f"number {name!r} ({_SETTING}) needs api_key as a string (and base_url, if "
            "given, as a string)"
        )
    known = next((each for each in API_SHAPES if each == shape), None)
    if shape is not None and known is None:
        raise ConfigurationError(
            f"number {name!r} ({_SETTING}) has shape {shape!r}; use one of "
            f"{', '.join(map(repr, API_SHAPES))}"
        )
    try:
        return Number(api_key, base_url, known)
    except ConfigurationError as exc:
        raise ConfigurationError(f"number {name!r} ({_SETTING}): {exc}") from None


class Numbers:
    """The configured numbers of an app, each with its own client.

    Args:
        configured: each number's name and its ``Number`` (or key, or JSON object).
        settings: the app's settings, whose base URL and shape a number without its own
            takes.

    Raises:
        ConfigurationError: an entry cannot be used, or a number has no base URL and the app
            has none either; the message names the number and the setting.
    """

    def __init__(self, configured: Mapping[str, object], settings: Settings) -> None:
        self.numbers: dict[str, Number] = {}
        self._clients: dict[str, WhizardClient] = {}
        for name, value in configured.items():
            number = _number(name, value)
            base_url = number.base_url or settings.base_url
            if base_url is None:
                raise ConfigurationError(
                    f"number {name!r} ({_SETTING}) has no base_url and WHIZARD_BASE_URL is "
                    "not set: give it a base_url, or set WHIZARD_BASE_URL for all"
                )
            shape = number.shape or settings.shape
            self.numbers[name] = Number(number.api_key, base_url, shape)
            # A session per client, opened at its first call: a few numbers need no more,
            # and a client may then be built before the event loop runs.
            self._clients[name] = WhizardClient(number.api_key, base_url, shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self.numbers)

    def __repr__(self) -> str:
        return f"Numbers({sorted(self.numbers)})"

    def client(self, name: str) -> WhizardClient:
        """The client that speaks for number ``name`` with its own key.

        Raises:
            UnknownNumberError: no number of that name is configured.
        """
        found = self._clients.get(name)
        if found is None:
            raise UnknownNumberError(
                f"number {name!r} is not configured; the configured ones are "
                f"{sorted(self._clients)} ({_SETTING})",
                number=name,
            )
        return found

    def check(self, event: Any, keyed_default: bool) -> None:
        """Refuse a message or status this app has no key for.

        Args:
            event: the typed event.
            keyed_default: whether the app has a key of its own (``WHIZARD_API_KEY`` or a
                given client) for events that name no number.

        Raises:
            UnknownNumberError: the event names a number that is not configured, or names
                none and the app has no key of its own; the message names the setting.
        """
        name = number_of(event)
        if name is None:
            if keyed_default:
                return
            raise UnknownNumberError(
                "the event names no receiving number (an on-premises callback posted to "
                "/webhook instead of its number's /webhook/<name>) and no WHIZARD_API_KEY is "
                "set for such events: register each number's own webhook path (set "
                "WHIZROUTER_WEBHOOK_URL) or set WHIZARD_API_KEY, then replay it",
                number=None,
            )
        if name not in self._clients:
            raise UnknownNumberError(
                f"the event came to number {name!r}, which is not configured: add it with its "
                f"key to {_SETTING} (configured: {sorted(self._clients)}), then replay it",
                number=name,
            )

    def dispatching(
        self, decode: Decoder, make_context: ContextFactory, *, keyed_default: bool
    ) -> tuple[Decoder, ContextFactory]:
        """The dispatcher's decoder and context factory for an app with these numbers.

        The decoder refuses an event this app has no key for (the dispatcher dead-letters
        it with the message); the context factory gives each context the client of the
        event's number (an event naming none, and a raw event, keep the app's client).
        """
        clients = self._clients

        def decode_for_number(stored: StoredEvent) -> tuple[Any, Any]:
            event, contact = decode(stored)
            if stored.kind != "raw":
                self.check(event, keyed_default)
            return event, contact

        def context_for_number(
            stored: StoredEvent, event: Any, contact: Any, attempt: int
        ) -> Context:
            ctx = make_context(stored, event, contact, attempt)
            name = number_of(event) if stored.kind != "raw" else None
            if name is not None:
                ctx.client = clients[name]
            return ctx

        return decode_for_number, context_for_number

    def serve(self, web_app: web.Application, path: str, receiver: Receiver) -> None:
        """Serve each number's own webhook path, ``<path>/<name>``, beside ``path``."""
        web_app.router.add_post(
            f"{path.rstrip('/')}/{NUMBER_ROUTE}",
            receiver.number_webhook,
            expect_handler=receiver.expect_continue,
        )

    def log_numbers(self) -> None:
        """Say, one line each, where each number's replies go and where its callbacks come."""
        for name, number in self.numbers.items():
            assert number.shape is not None  # filled from the app's settings
            path = "/webhook" if number.shape == "cloud" else f"/webhook/{name}"
            log.info(
                "number %s: %s API at %s, callbacks at %s",
                name,
                number.shape,
                number.base_url,
                path,
            )

    async def close(self) -> None:
        """Close every number's client (each stays usable: a later call opens a session)."""
        for client in self._clients.values():
            await client.close()
