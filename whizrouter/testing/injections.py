"""What a test told the fake provider to do to coming requests: fail, delay or drop them.

An ``Injection`` applies to the next ``times`` requests to its path (or to any path); the
oldest matching one is taken first. ``FailureInjection`` holds the fake provider's methods
that queue them (``fail_next``, ``delay_next``, ``drop_next``); ``encode_body`` turns what
``fail_next`` accepts into the bytes and content type served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from whizrouter.testing.error_bodies import meta_error_body

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


class FailureInjection:
    """The failure-injection methods of :class:`~whizrouter.testing.FakeProvider`, which
    serves what they queue."""

    _failures: list[Injection]
    _delays: list[Injection]
    _drops: list[Injection]

    def fail_next(
        self,
        status: int,
        body: FakeBody | None = None,
        *,
        times: int = 1,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with an error instead of serving them.

        Injections queue up: the oldest one that matches a request answers it.

        Args:
            status: the HTTP status to answer with, such as 503, 429 or 555.
            body: the body; default :func:`meta_error_body` for ``status``. A dict or list is
                sent as JSON, a str as HTML (when it starts with ``<``) or plain text, bytes as
                they are (``b""`` for an empty body).
            times: how many requests to fail.
            path: fail only requests to this exact path (such as ``"/v1/messages"``).
            headers: extra answer headers, such as ``{"Retry-After": "1"}``.
        """
        if body is None:
            body = meta_error_body(status, f"injected failure {status}")
        raw, answer_headers = encode_body(body)
        answer_headers.update(headers or {})
        self._failures.append(
            Injection(path=path, times=times, status=status, body=raw, headers=answer_headers)
        )

    def delay_next(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Hold back the answer to the next ``times`` matching requests, to provoke timeouts.

        The request is still recorded and served (the provider got it); only the answer waits.
        :meth:`close` releases pending answers at once.

        Args:
            seconds: how long to hold each answer.
            times: how many requests to delay.
            path: delay only requests to this exact path.
        """
        self._delays.append(Injection(path=path, times=times, seconds=seconds))

    def drop_next(self, *, times: int = 1, path: str | None = None) -> None:
        """Close the connection of the next ``times`` matching requests without answering.

        The request is recorded (and a send is counted as accepted by the provider), so this
        models a connection reset after the provider took the request.

        Args:
            times: how many requests to drop.
            path: drop only requests to this exact path.
        """
        self._drops.append(Injection(path=path, times=times))
