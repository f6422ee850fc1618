"""JSON logs: one object per line, for a log pipeline to index by event and conversation.

``whizrouter run --log-format json`` (or ``WHIZROUTER_LOG_FORMAT=json``) formats every record
with :class:`JsonFormatter`: ``ts``, ``level``, ``logger``, ``message``; for a record about
an event, ``event`` (its dedupe key), ``conversation``, ``handler`` and ``attempt``; a
traceback as the one field ``traceback``. Plain text stays the default.

The event fields come from the record itself (``extra={"event": ...}``) or, for every line
logged while a handler runs (the dispatcher's and the handler's own), from
:data:`EVENT_FIELDS`, which the dispatcher sets for each run. What the messages say is what
the text format says: neither ever carries a key or a password.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final

import orjson

#: The event a handler runs on, in the task that runs it: (event key, conversation,
#: handler, attempt); None outside a run.
EVENT_FIELDS: ContextVar[tuple[str, str, str, int] | None] = ContextVar(
    "whizrouter_event_fields", default=None
)
_NAMES: Final = ("event", "conversation", "handler", "attempt")
#: Whether a :class:`JsonFormatter` exists: only then does the dispatcher set
#: :data:`EVENT_FIELDS` for each run (a context variable set per event is not free).
in_use = False


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module's docstring for its fields)."""

    def __init__(self) -> None:
        super().__init__()
        global in_use
        in_use = True

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        running = EVENT_FIELDS.get()
        for index, name in enumerate(_NAMES):
            value = fields.get(name)
            if value is None and running is not None:
                value = running[index]
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def use_json_logs(level: int) -> None:
    """Log to stderr in JSON at ``level``, in place of ``logging.basicConfig``'s text."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
