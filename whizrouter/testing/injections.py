"""What a test told the fake provider to do to coming requests: fail, delay or drop them.

An ``Injection`` applies to the next ``times`` requests to its path (or to any path); the
oldest matching one is taken first. ``encode_body`` turns what ``FakeProvider.fail_next``
accepts into the bytes and content type served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

#: What :meth:`FakeProvider.fail_next` accepts as a body: JSON (dict or list), text (HTML when
#: it starts with ``<``) or raw bytes (``b""`` for an empty body).
FakeBody = dict[str, Any] | list[Any] | str | bytes


@dataclass(slots=True)
class Injection:
    """One pending failure, delay or drop.

    Attributes:
        path: the exact path it applies to, or ``None`` for any.
        times: how many more requests it applies to.
        status: the status of an injected failure.
        body: the body of an injected failure.
        headers: the answer headers of an injected failure.
        seconds: how long an injected delay holds the answer.
    """

    path: str | None
    times: int
    status: int = 0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def matches(self, path: str) -> bool:
        """Whether it applies to a request to ``path``."""
        return self.times > 0 and (self.path is None or self.path == path)


def take(injections: list[Injection], path: str) -> Injection | None:
    """The oldest injection that applies to ``path``, counted as used; None if none does."""
    for injection in injections:
        if injection.matches(path):
            injection.times -= 1
            if injection.times <= 0:
                injections.remove(injection)
            return injection
    return None


def encode_body(body: FakeBody) -> tuple[bytes, dict[str, str]]:
    """The bytes to serve for ``body``, and its ``Content-Type`` header (none for bytes)."""
    if isinstance(body, dict | list):
        return orjson.dumps(body), {"Content-Type": "application/json"}
    if isinstance(body, str):
        html = body.lstrip().startswith("<")
        return body.encode(), {"Content-Type": "text/html" if html else "text/plain"}
    return bytes(body), {}
