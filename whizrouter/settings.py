"""Settings: constructor arguments first, then the environment, then defaults.

This module is where whizrouter reads its environment. Every setting of ``WhizRouter`` can
come from there (:class:`Settings`), so an operator can run a bot without touching its code;
so can the provider client's key, base URL and API shape (:class:`ClientSettings`). A value
that cannot be used fails with a ``ConfigurationError`` naming the variable and what it
accepts. The default values themselves are :mod:`whizrouter.defaults`'.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar
from urllib.parse import urlsplit

from pydantic import SecretStr

from whizrouter.defaults import (
    API_SHAPES,
    DEFAULT_BODY_LIMIT,
    DEFAULT_CONCURRENCY,
    DEFAULT_HANDLER_TIMEOUT,
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_HEADER_LIMIT,
    DEFAULT_INBOX_URL,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_BACKLOG,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SHAPE,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_STATE_TTL,
    ApiShape,
)
from whizrouter.errors import ConfigurationError

#: Environment variable holding the provider key.
API_KEY_ENV: Final = "WHIZARD_API_KEY"
#: Environment variable holding the provider API base URL.
BASE_URL_ENV: Final = "WHIZARD_BASE_URL"
#: Environment variable choosing the API shape (``onprem`` by default).
SHAPE_ENV: Final = "WHIZARD_API_SHAPE"
#: Environment variable mapping each receiving number to its own key: a JSON object, or the
#: path of a file holding one (see ``whizrouter.numbers``).
NUMBERS_ENV: Final = "WHIZARD_NUMBERS"
#: Environment variable naming the inbox (``memory``, ``sqlite:///...``, ``nats://...``).
INBOX_ENV: Final = "WHIZROUTER_INBOX"
#: Environment variable choosing the log format of ``whizrouter run``: ``text`` or ``json``.
LOG_FORMAT_ENV: Final = "WHIZROUTER_LOG_FORMAT"
#: The log formats ``whizrouter run`` writes.
LOG_FORMATS: Final = ("text", "json")

_Default = TypeVar("_Default", int, float)


def _env_int(
    env: Mapping[str, str], name: str, default: _Default, *, minimum: int = 1
) -> int | _Default:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigurationError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise ConfigurationError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def _env_port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigurationError(f"{name}={raw!r} is not a TCP port; choose one from 1 to 65535")
    return int(raw)


def log_format_from_env(env: Mapping[str, str] | None = None) -> str:
    """The log format ``WHIZROUTER_LOG_FORMAT`` names (``text`` when unset).

    Raises:
        ConfigurationError: it names neither ``text`` nor ``json``.
    """
    value = ((os.environ if env is None else env).get(LOG_FORMAT_ENV) or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigurationError(f"{LOG_FORMAT_ENV}={value!r} is not known; use text or json")
    return value


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


def _known_shape(value: str) -> ApiShape | None:
    """``value`` as an API shape, or None when it names none."""
    for shape in API_SHAPES:
        if value == shape:
            return shape
    return None


def numbers_from_env(env: Mapping[str, str] | None = None) -> dict[str, object] | None:
    """The numbers ``WHIZARD_NUMBERS`` maps, as its JSON object, or None when it is unset.

    The value is a JSON object (it starts with ``{``) or the path of a file holding one; the
    entries are checked by ``whizrouter.numbers``.

    Raises:
        ConfigurationError: the file cannot be read, or the text is not a JSON object.
    """
    raw = (os.environ if env is None else env).get(NUMBERS_ENV, "").strip()
    if not raw:
        return None
    if raw.startswith(("{", "[")):
        text, source = raw, NUMBERS_ENV
    else:
        source = f"{NUMBERS_ENV} file {raw!r}"
        try:
            with open(raw, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigurationError(
                f"{source} cannot be read ({why}); set {NUMBERS_ENV} to a JSON object "
                "or to the path of a file holding one"
            ) from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        # The text holds keys: say where it broke, never what it says.
        raise ConfigurationError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}): write an "
            'object such as {"<number>": {"api_key": "...", "base_url": "https://..."}}'
        ) from None
    if not isinstance(parsed, dict):
        raise ConfigurationError(
            f"{source} must be a JSON object mapping each number to its key, not "
            f"{type(parsed).__name__}"
        )
    return parsed


def inbox_url_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The inbox URL ``WHIZROUTER_INBOX`` names, or None when it is unset or empty."""
    return (os.environ if env is None else env).get(INBOX_ENV) or None


def state_ttl_from_env(env: Mapping[str, str] | None = None) -> float:
    """Seconds of ``WHIZROUTER_STATE_TTL`` (a conversation's state lives that long after its
    last write), else the default of 30 days."""
    env = os.environ if env is None else env
    return float(_env_int(env, "WHIZROUTER_STATE_TTL", DEFAULT_STATE_TTL))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a ``WhizRouter`` is configured with, resolved and validated.

    Attributes:
        api_key: the provider key (``WHIZARD_API_KEY``), sent as ``WHIZARD-KEY``.
        base_url: the provider API base URL (``WHIZARD_BASE_URL``).
        shape: the provider API shape (``WHIZARD_API_SHAPE``): ``onprem`` or ``cloud``.
        webhook_url: the public HTTPS URL registered at startup (``WHIZROUTER_WEBHOOK_URL``).
        webhook_user: Basic auth user the receiver requires (``WHIZROUTER_WEBHOOK_USER``).
        webhook_password: Basic auth password (``WHIZROUTER_WEBHOOK_PASSWORD``).
        inbox_url: where acknowledged events wait (``WHIZROUTER_INBOX``).
        plugins: plugin names to load (``WHIZROUTER_PLUGINS``, comma-separated).
        concurrency: conversations handled at once (``WHIZROUTER_CONCURRENCY``).
        max_backlog: unsettled events above which the receiver answers 503
            (``WHIZROUTER_MAX_BACKLOG``).
        body_limit: largest callback body in bytes (``WHIZROUTER_BODY_LIMIT``).
        read_timeout: seconds to receive a whole body before answering 408.
        shutdown_grace: seconds in-flight handlers get to finish at shutdown
            (``WHIZROUTER_SHUTDOWN_GRACE``).
        numbers: each receiving number and its own key, as given to ``numbers=`` or read
            from ``WHIZARD_NUMBERS`` (checked by ``whizrouter.numbers``); None for one key.
        state_ttl: seconds a conversation's state lives after its last write
            (``WHIZROUTER_STATE_TTL``).
        handler_timeout: seconds a handler run may take before it is cancelled
            (``WHIZROUTER_HANDLER_TIMEOUT``).
        metrics_port: a port of its own for ``GET /metrics``, without auth
            (``WHIZROUTER_METRICS_PORT``); None: served on the bot's port.
        header_limit: largest request head in bytes, 431 past it (``WHIZROUTER_HEADER_LIMIT``).
        head_timeout: seconds a client has to send a complete request head
            (``WHIZROUTER_HEAD_TIMEOUT``).
        keepalive_timeout: seconds an idle kept-alive connection stays open
            (``WHIZROUTER_KEEPALIVE_TIMEOUT``).
    """

    api_key: SecretStr | None = None
    base_url: str | None = None
    shape: ApiShape = DEFAULT_SHAPE
    webhook_url: str | None = None
    webhook_user: str | None = None
    webhook_password: SecretStr | None = field(default=None, repr=False)
    inbox_url: str = DEFAULT_INBOX_URL
    plugins: tuple[str, ...] = ()
    concurrency: int = DEFAULT_CONCURRENCY
    max_backlog: int = DEFAULT_MAX_BACKLOG
    body_limit: int = DEFAULT_BODY_LIMIT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    numbers: Mapping[str, object] | None = field(default=None, repr=False)
    state_ttl: float = DEFAULT_STATE_TTL
    handler_timeout: float = DEFAULT_HANDLER_TIMEOUT
    metrics_port: int | None = None
    header_limit: int = DEFAULT_HEADER_LIMIT
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        shape: str | None = None,
        webhook_url: str | None = None,
        webhook_user: str | None = None,
        webhook_password: str | SecretStr | None = None,
        inbox: str | None = None,
        plugins: Sequence[str] | None = None,
        concurrency: int | None = None,
        max_backlog: int | None = None,
        body_limit: int | None = None,
        read_timeout: float | None = None,
        shutdown_grace: float | None = None,
        numbers: Mapping[str, object] | None = None,
        state_ttl: float | None = None,
        handler_timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Resolve each setting from its argument, else its environment variable, else default.

        Raises:
            ConfigurationError: a value is malformed; the message names the variable.
        """
        env = os.environ if env is None else env
        given_shape = shape or env.get(SHAPE_ENV) or DEFAULT_SHAPE
        resolved_shape = _known_shape(given_shape)
        if resolved_shape is None:
            raise ConfigurationError(
                f"{SHAPE_ENV}={given_shape!r} is not known; use "
                + " or ".join(repr(known) for known in API_SHAPES)
            )
        if plugins is None:
            plugins = [p.strip() for p in env.get("WHIZROUTER_PLUGINS", "").split(",")]
        user = webhook_user if webhook_user is not None else env.get("WHIZROUTER_WEBHOOK_USER")
        password = _secret(
            webhook_password
            if webhook_password is not None
            else env.get("WHIZROUTER_WEBHOOK_PASSWORD")
        )
        if bool(user) != bool(password and password.get_secret_value()):
            raise ConfigurationError(
                "set both WHIZROUTER_WEBHOOK_USER and WHIZROUTER_WEBHOOK_PASSWORD, or neither"
            )
        settings = cls(
            api_key=_secret(api_key if api_key is not None else env.get(API_KEY_ENV) or None),
            base_url=base_url or env.get(BASE_URL_ENV) or None,
            shape=resolved_shape,
            webhook_url=webhook_url or env.get("WHIZROUTER_WEBHOOK_URL") or None,
            webhook_user=user or None,
            webhook_password=password if user else None,
            inbox_url=inbox or inbox_url_from_env(env) or DEFAULT_INBOX_URL,
            plugins=tuple(p for p in plugins if p),
            concurrency=concurrency
            if concurrency is not None
            else _env_int(env, "WHIZROUTER_CONCURRENCY", DEFAULT_CONCURRENCY),
            max_backlog=max_backlog
            if max_backlog is not None
            else _env_int(env, "WHIZROUTER_MAX_BACKLOG", DEFAULT_MAX_BACKLOG),
            body_limit=body_limit
            if body_limit is not None
            else _env_int(env, "WHIZROUTER_BODY_LIMIT", DEFAULT_BODY_LIMIT),
            read_timeout=read_timeout if read_timeout is not None else DEFAULT_READ_TIMEOUT,
            shutdown_grace=shutdown_grace
            if shutdown_grace is not None
            else float(
                _env_int(env, "WHIZROUTER_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE, minimum=0)
            ),
            numbers=numbers if numbers is not None else numbers_from_env(env),
            state_ttl=state_ttl if state_ttl is not None else state_ttl_from_env(env),
            handler_timeout=handler_timeout
            if handler_timeout is not None
            else _env_seconds(env, "WHIZROUTER_HANDLER_TIMEOUT", DEFAULT_HANDLER_TIMEOUT),
            metrics_port=_env_port(env, "WHIZROUTER_METRICS_PORT"),
            header_limit=_env_int(env, "WHIZROUTER_HEADER_LIMIT", DEFAULT_HEADER_LIMIT),
            head_timeout=_env_seconds(env, "WHIZROUTER_HEAD_TIMEOUT", DEFAULT_HEAD_TIMEOUT),
            keepalive_timeout=_env_seconds(
                env, "WHIZROUTER_KEEPALIVE_TIMEOUT", DEFAULT_KEEPALIVE_TIMEOUT
            ),
        )
        if settings.state_ttl <= 0:
            raise ConfigurationError("state_ttl must be a positive number of seconds")
        if not settings.handler_timeout > 0:
            raise ConfigurationError("handler_timeout must be a positive number of seconds")
        if settings.concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        if settings.webhook_url is not None:
            check_webhook_url(settings.webhook_url)
        if settings.base_url is not None:
            check_base_url(settings.base_url)
        return settings

    @property
    def auth_header(self) -> str | None:
        """The ``Authorization`` header value the receiver requires, or None without auth."""
        if not self.webhook_user or self.webhook_password is None:
            return None
        pair = f"{self.webhook_user}:{self.webhook_password.get_secret_value()}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """The provider client's key, base URL and API shape, each from its argument, else the
    environment, else its default.

    Only the shape is checked here: a ``WhizardClient`` without a key or base URL can be
    built (a bot must start without them), and its first API call names what is missing.

    Attributes:
        api_key: the provider key (``WHIZARD_API_KEY``), or None.
        base_url: the API base URL without a trailing slash (``WHIZARD_BASE_URL``), or None.
        shape: ``onprem`` or ``cloud`` (``WHIZARD_API_SHAPE``, read case-insensitively).
    """

    api_key: SecretStr | None
    base_url: str | None
    shape: ApiShape

    @classmethod
    def resolve(
        cls,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        shape: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> ClientSettings:
        """Resolve the three from the arguments, else the environment, else the defaults.

        Raises:
            ConfigurationError: ``shape`` or ``WHIZARD_API_SHAPE`` names no API shape.
        """
        env = os.environ if env is None else env
        if api_key is None:
            api_key = env.get(API_KEY_ENV) or None
        if base_url is None:
            base_url = env.get(BASE_URL_ENV, "").strip() or None
        if shape is None:
            given, source = env.get(SHAPE_ENV, "").strip().lower() or DEFAULT_SHAPE, SHAPE_ENV
        else:
            given, source = shape, "shape"
        resolved_shape = _known_shape(given)
        if resolved_shape is None:
            raise ConfigurationError(
                f"{source} must be one of {', '.join(repr(s) for s in API_SHAPES)}, not {given!r}"
            )
        return cls(
            api_key=_secret(api_key),
            base_url=base_url.rstrip("/") if base_url is not None else None,
            shape=resolved_shape,
        )


def check_base_url(url: str) -> None:
    """Refuse a provider base URL that is not an ``http(s)://host`` URL.

    Raises:
        ConfigurationError: the message names the variable and shows a good value.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"the provider base URL (WHIZARD_BASE_URL or base_url=) must be an http(s) URL "
            f"such as https://waba.example.com, not {without_credentials(url)!r}"
        )
    if "@" in parts.netloc:
        # Credentials in it would show in logs and reprs; the provider takes the key header.
        raise ConfigurationError(
            f"the provider base URL {without_credentials(url)!r} (WHIZARD_BASE_URL or "
            "base_url=) carries credentials; remove user:password@, the provider "
            "authenticates with WHIZARD_API_KEY"
        )


def without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}://{authority}{slash}{path}"


def check_webhook_url(url: str) -> None:
    """Refuse a webhook URL the provider would not call: it must be https on port 443.

    Raises:
        ConfigurationError: the URL is not ``https://`` or names a port other than 443.
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ConfigurationError(
            f"WHIZROUTER_WEBHOOK_URL={without_credentials(url)!r} carries credentials, which "
            "would be logged and stored in the provider's config as they are; remove "
            "user:password@ and set WHIZROUTER_WEBHOOK_USER and WHIZROUTER_WEBHOOK_PASSWORD"
        )
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError(
            f"WHIZROUTER_WEBHOOK_URL={url!r} must be an https:// URL with a host name; the "
            "provider only calls HTTPS webhooks (put a TLS proxy in front of whizrouter)"
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"WHIZROUTER_WEBHOOK_URL={url!r} has a malformed port") from None
    if port not in (None, 443):
        raise ConfigurationError(
            f"WHIZROUTER_WEBHOOK_URL={url!r} uses port {port}; the provider only calls port 443, "
            "so publish the webhook on 443 and forward to whizrouter's own port"
        )
