"""The console provider: the test kit's fake provider, printing every call it answers.

``whizrouter dev`` uses it when no provider key is set, so a bot's replies show on screen
with no account; ``whizrouter fake-provider`` prints its calls the same way. It answers as
the real API does, in either shape (sends get a message id, mark-read succeeds, the webhook
configuration is kept), because it *is* :class:`~whizrouter.testing.FakeProvider`; this
module only adds the readable line per call (:func:`describe_call`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from aiohttp import web

from whizrouter.defaults import ApiShape
from whizrouter.testing.fake_provider import FakeProvider
from whizrouter.testing.recorded_call import RecordedCall
from whizrouter.testing.sent import sent_message

#: The key the console provider accepts: it only ever talks to the bot in its own process.
CONSOLE_KEY = "console"


def _masked_headers(headers: Any) -> str:
    """Header names of a webhook configuration, values hidden (they carry credentials)."""
    if not isinstance(headers, dict) or not headers:
        return ""
    return " with headers " + ", ".join(f"{name}: ***" for name in headers)


def describe_call(call: RecordedCall) -> str:
    """One readable line for a call the provider received.

    Sends read as the message (``text to 15551230001: 'echo: hi'``), mark-reads and webhook
    configuration by what they did; a refused or failed call ends with its status. The values
    of webhook headers are hidden: they hold the webhook's password.
    """
    if call.kind == "send" and isinstance(call.json, dict):
        line = "send " + sent_message(call.json, call.message_id).describe()
        if call.message_id is not None:
            line += f" -> {call.message_id}"
    elif call.kind == "mark_read":
        line = f"mark read {call.message_id}"
    elif call.kind == "set_webhook" and isinstance(call.json, dict):
        line = f"set webhook {call.json.get('url')}{_masked_headers(call.json.get('headers'))}"
    elif call.kind == "get_webhook":
        line = "read webhook configuration"
    else:
        line = f"{call.method} {call.path}"
    if not call.ok:
        line += f" (answered {call.status})"
    return line


class CallPrinter:
    """Prints each call a fake provider receives as one line, flushed at once.

    Args:
        out: where to write (standard output by default, read when called).
        prefix: the word in front of every line.
    """

    def __init__(self, out: TextIO | None = None, prefix: str = "provider") -> None:
        self.out = out
        self.prefix = prefix

    def __call__(self, call: RecordedCall) -> None:
        """Print ``call``."""
        out = self.out if self.out is not None else sys.stdout
        out.write(f"[{self.prefix}] {describe_call(call)}\n")
        out.flush()  # a pipe would otherwise hold the line back


def console_provider(
    shape: ApiShape,
    *,
    api_key: str = CONSOLE_KEY,
    host: str = "127.0.0.1",
    port: int = 0,
    out: TextIO | None = None,
    prefix: str = "provider",
    routes: Iterable[web.AbstractRouteDef] = (),
) -> FakeProvider:
    """A fake provider of ``shape`` that prints every call it answers (not started yet).

    Args:
        shape: the API shape to speak.
        api_key: the key it accepts.
        host: the address to listen on.
        port: the port to listen on (0: a free one).
        out: where to print (standard output by default).
        prefix: the word in front of every printed line.
        routes: extra routes to serve (the HTTP controls of ``whizrouter fake-provider``).
    """
    return FakeProvider(
        shape,
        api_key,
        host=host,
        port=port,
        on_call=CallPrinter(out, prefix),
        routes=routes,
    )
