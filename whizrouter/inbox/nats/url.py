"""The ``nats://`` inbox URL: servers, inbox settings and connection options.

``WHIZROUTER_INBOX=nats://[user:pass@]host:4222[,nats://host2:4222][?option=value&...]``; see
``NatsInbox.from_url`` for the options. Parsing is kept apart from the inbox so that a
malformed URL is refused with a message before anything connects.
"""

from __future__ import annotations

import math
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from whizrouter.errors import ConfigurationError

_URL_OPTIONS = {
    "stream": str,
    "partitions": int,
    "replicas": int,
    "max_bytes": int,
    "max_msgs": int,
    "duplicate_window": float,
    "ack_wait": float,
    "lease_ttl": float,
    "max_ack_pending": int,
}
_CONNECT_OPTIONS = {
    "name": ("name", str),
    "creds": ("user_credentials", str),
    "nkey": ("nkeys_seed", str),
    "tls_hostname": ("tls_hostname", str),
    "reconnect": ("allow_reconnect", bool),
    "max_reconnect_attempts": ("max_reconnect_attempts", int),
    "reconnect_time_wait": ("reconnect_time_wait", float),
    "connect_timeout": ("connect_timeout", float),
    "tls_handshake_first": ("tls_handshake_first", bool),
}
_TLS_OPTIONS = ("tls_ca", "tls_cert", "tls_key")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class NatsUrl:
    """What a ``nats://`` inbox URL says.

    Attributes:
        servers: the server URLs, credentials included (never log them: see ``redact``).
        settings: inbox keyword arguments (``stream``, ``partitions``, ...).
        connect: keyword arguments for ``nats.connect`` (``tls`` as a ready SSL context).
    """

    servers: list[str]
    settings: dict[str, Any]
    connect: dict[str, Any]


def parse_nats_url(url: str) -> NatsUrl:
    """Read an inbox URL.

    Raises:
        ConfigurationError: an option is unknown or malformed, or the TLS files cannot load.
    """
    base, _, query = url.partition("?")
    scheme = base.split("://", 1)[0] if "://" in base else "nats"
    servers = [
        s if "://" in s else f"{scheme}://{s}"
        for s in (part.strip() for part in base.split(","))
        if s
    ]
    settings: dict[str, Any] = {}
    connect: dict[str, Any] = {}
    tls: dict[str, str] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        if name in _URL_OPTIONS:
            settings[name] = _convert(name, raw, _URL_OPTIONS[name])
        elif name in _CONNECT_OPTIONS:
            option, kind = _CONNECT_OPTIONS[name]
            connect[option] = _convert(name, raw, kind)
        elif name in _TLS_OPTIONS:
            tls[name] = raw
        else:
            known = sorted([*_URL_OPTIONS, *_CONNECT_OPTIONS, *_TLS_OPTIONS])
            raise ConfigurationError(
                f"WHIZROUTER_INBOX: unknown NATS option {name!r}; known: {', '.join(known)}"
            )
    if tls:
        try:
            context = ssl.create_default_context(cafile=tls.get("tls_ca"))
            if "tls_cert" in tls:
                context.load_cert_chain(tls["tls_cert"], tls.get("tls_key"))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"WHIZROUTER_INBOX: cannot load TLS files: {exc}") from exc
        connect["tls"] = context
    return NatsUrl(servers, settings, connect)


def redact(server: str) -> str:
    """``server`` without its credentials, path or query, for logs."""
    parts = urlsplit(server)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


#: The longest duration an option may give, in seconds (JetStream keeps nanoseconds in 64
#: bits; NaN and infinity would pass a ``> 0`` check and fail much later).
MAX_SECONDS = 10_000_000


def check_settings(
    *,
    servers: Sequence[str],
    stream: str,
    partitions: int,
    ack_wait: float,
    lease_ttl: float,
    duplicate_window: float,
    dedupe_seconds: float,
) -> None:
    """Refuse settings of a ``NatsInbox`` (from a URL or given in code) it cannot work with.

    Raises:
        ConfigurationError: a setting is out of bounds; the message names it.
    """
    if not servers:
        raise ConfigurationError("WHIZROUTER_INBOX: the NATS URL names no server")
    if not _NAME_RE.match(stream):
        raise ConfigurationError(
            f"WHIZROUTER_INBOX: stream={stream!r} may only hold letters, digits, - and _"
        )
    if not 1 <= partitions <= 4096:
        raise ConfigurationError("WHIZROUTER_INBOX: partitions must be between 1 and 4096")
    # The same bounds as in the URL, for an inbox built in code; the dedupe window has no
    # upper bound of its own.
    durations = (
        ("ack_wait", ack_wait, MAX_SECONDS),
        ("lease_ttl", lease_ttl, MAX_SECONDS),
        ("duplicate_window", duplicate_window, MAX_SECONDS),
        ("dedupe_seconds", dedupe_seconds, math.inf),
    )
    for name, seconds, most in durations:
        if not (math.isfinite(seconds) and 0 < seconds <= most):
            bound = f" and at most {most:,}" if math.isfinite(most) else ""
            raise ConfigurationError(
                f"NatsInbox: {name}={seconds!r} must be a number of seconds above 0{bound}"
            )


def _convert(setting: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(
            f"WHIZROUTER_INBOX: {setting}={raw!r} is not a valid {kind.__name__}"
        ) from None
    if kind is float and not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise ConfigurationError(
            f"WHIZROUTER_INBOX: {setting}={raw!r} must be a number of seconds above 0 and at "
            f"most {MAX_SECONDS:,}"
        )
    return value
