"""Settings: constructor arguments first, then the environment, then defaults.

Every setting of ``WhizRouter`` can come from the environment, so an operator can run a bot
without touching its code. A value that cannot be used fails at construction with a
``ConfigurationError`` naming the variable and what it accepts.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from whizrouter.errors import ConfigurationError
from whizrouter.inbox.factory import DEFAULT_INBOX_URL

Shape = Literal["onprem", "cloud"]

DEFAULT_BODY_LIMIT = 10 * 1024 * 1024


def _env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
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


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


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
    """

    api_key: SecretStr | None = None
    base_url: str | None = None
    shape: Shape = "onprem"
    webhook_url: str | None = None
    webhook_user: str | None = None
    webhook_password: SecretStr | None = field(default=None, repr=False)
    inbox_url: str = DEFAULT_INBOX_URL
    plugins: tuple[str, ...] = ()
    concurrency: int = 64
    max_backlog: int = 100_000
    body_limit: int = DEFAULT_BODY_LIMIT
    read_timeout: float = 10.0
    shutdown_grace: float = 25.0

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
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Resolve each setting from its argument, else its environment variable, else default.

        Raises:
            ConfigurationError: a value is malformed; the message names the variable.
        """
        env = os.environ if env is None else env
        resolved_shape = shape or env.get("WHIZARD_API_SHAPE") or "onprem"
        if resolved_shape not in ("onprem", "cloud"):
            raise ConfigurationError(
                f"WHIZARD_API_SHAPE={resolved_shape!r} is not known; use 'onprem' or 'cloud'"
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
            api_key=_secret(api_key if api_key is not None else env.get("WHIZARD_API_KEY") or None),
            base_url=base_url or env.get("WHIZARD_BASE_URL") or None,
            shape="cloud" if resolved_shape == "cloud" else "onprem",
            webhook_url=webhook_url or env.get("WHIZROUTER_WEBHOOK_URL") or None,
            webhook_user=user or None,
            webhook_password=password if user else None,
            inbox_url=inbox or env.get("WHIZROUTER_INBOX") or DEFAULT_INBOX_URL,
            plugins=tuple(p for p in plugins if p),
            concurrency=concurrency
            if concurrency is not None
            else _env_int(env, "WHIZROUTER_CONCURRENCY", 64),
            max_backlog=max_backlog
            if max_backlog is not None
            else _env_int(env, "WHIZROUTER_MAX_BACKLOG", 100_000),
            body_limit=body_limit
            if body_limit is not None
            else _env_int(env, "WHIZROUTER_BODY_LIMIT", DEFAULT_BODY_LIMIT),
            read_timeout=read_timeout if read_timeout is not None else 10.0,
            shutdown_grace=shutdown_grace
            if shutdown_grace is not None
            else float(_env_int(env, "WHIZROUTER_SHUTDOWN_GRACE", 25, minimum=0)),
        )
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
