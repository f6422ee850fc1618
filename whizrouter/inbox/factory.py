"""Pick an inbox backend from a ``WHIZROUTER_INBOX`` URL."""

from __future__ import annotations

from whizrouter.defaults import DEFAULT_DEDUPE_SECONDS, DEFAULT_INBOX_URL, DEFAULT_MAX_BACKLOG
from whizrouter.errors import ConfigurationError
from whizrouter.inbox.base import Inbox
from whizrouter.inbox.memory import MemoryInbox


def inbox_from_url(
    url: str,
    *,
    max_backlog: int = DEFAULT_MAX_BACKLOG,
    dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
) -> Inbox:
    """Build the inbox a URL names: ``memory``, ``sqlite:///path.db`` or ``nats://host:4222``.

    Raises:
        ConfigurationError: the URL names no known backend, or its backend is not installed.
    """
    if url == "memory" or url.startswith("memory:"):
        return MemoryInbox(max_backlog=max_backlog, dedupe_seconds=dedupe_seconds)
    if url.startswith("sqlite:"):
        from whizrouter.inbox.sqlite import SqliteInbox

        return SqliteInbox.from_url(url, max_backlog=max_backlog, dedupe_seconds=dedupe_seconds)
    if url.startswith(("nats://", "tls://")):
        try:
            from whizrouter.inbox.nats import NatsInbox
        except ImportError as exc:  # nats-py is an optional extra
            raise ConfigurationError(
                f"the inbox URL {url!r} names a NATS server but nats-py is not installed: "
                "pip install 'whizrouter[nats]'"
            ) from exc
        return NatsInbox.from_url(url, max_backlog=max_backlog, dedupe_seconds=dedupe_seconds)
    raise ConfigurationError(
        f"the inbox URL {url!r} names no inbox backend; use 'memory', "
        f"{DEFAULT_INBOX_URL!r} or 'nats://host:4222'"
    )
