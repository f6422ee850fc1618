"""The ``sqlite:///`` inbox URL: the file, and the ``synchronous`` and ``recent_keys`` options.

``sqlite:///inbox.db`` is relative to the working directory, ``sqlite:////var/x.db`` absolute
(as in SQLAlchemy). Parsing is kept apart from the inbox so that a malformed URL is refused
with a message that says what to write, before anything opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast
from urllib.parse import parse_qsl

from whizrouter.errors import ConfigurationError

#: ``normal`` survives a crash or kill of the process; ``full`` a power loss too.
Synchronous = Literal["normal", "full"]

_HINT = (
    "write sqlite:///relative/path.db (three slashes: relative to the working "
    "directory) or sqlite:////absolute/path.db (four slashes), optionally with "
    "?synchronous=full"
)


@dataclass(frozen=True)
class SqliteUrl:
    """What a sqlite inbox URL says.

    Attributes:
        path: the database file as written in the URL (relative to the working directory
            unless it starts with ``/``).
        synchronous: ``normal`` or ``full``.
        options: other keyword arguments of ``SqliteInbox`` the URL sets (``recent_keys``).
    """

    path: str
    synchronous: Synchronous = "normal"
    options: dict[str, int] = field(default_factory=dict)


def parse_sqlite_url(url: str) -> SqliteUrl:
    """Read a ``WHIZROUTER_INBOX`` URL that names a sqlite file.

    Raises:
        ConfigurationError: the URL is malformed; the message says what to write.
    """
    if not url.startswith("sqlite://"):
        raise ConfigurationError(f"WHIZROUTER_INBOX={url!r} is not a sqlite URL; {_HINT}")
    location, _, query = url.removeprefix("sqlite://").partition("?")
    if not location.startswith("/"):
        raise ConfigurationError(
            f"WHIZROUTER_INBOX={url!r} names a host ({location.split('/')[0]!r}), but a "
            f"sqlite inbox is a local file; {_HINT}"
        )
    path = location[1:]
    if not path or path.endswith("/"):
        raise ConfigurationError(f"WHIZROUTER_INBOX={url!r} names no database file; {_HINT}")
    if path == ":memory:":
        raise ConfigurationError(
            f"WHIZROUTER_INBOX={url!r} would lose events on a restart; "
            "use WHIZROUTER_INBOX=memory if that is what you want"
        )
    synchronous: Synchronous = "normal"
    options: dict[str, int] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "recent_keys":
            if not value.isdigit() or int(value) < 1:
                raise ConfigurationError(
                    f"WHIZROUTER_INBOX={url!r}: recent_keys={value!r} is not a positive "
                    "whole number; write e.g. recent_keys=50000"
                )
            options["recent_keys"] = int(value)
            continue
        if name != "synchronous":
            raise ConfigurationError(
                f"WHIZROUTER_INBOX={url!r}: unknown parameter {name!r}; "
                "the parameters are synchronous=normal|full and recent_keys=N"
            )
        mode = value.lower()
        if mode not in ("normal", "full"):
            raise ConfigurationError(
                f"WHIZROUTER_INBOX={url!r}: synchronous={value!r} is not supported; use "
                "synchronous=normal (survives a crash) or synchronous=full (survives a "
                "power loss too)"
            )
        synchronous = cast(Synchronous, mode)
    return SqliteUrl(path, synchronous, options)
