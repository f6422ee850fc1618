"""One request to the provider API: the key header, the timeout, the retry rule, the errors.

The client (:mod:`whizrouter.client`) builds requests; this module sends them. The key
and base URL are checked at the first request, so a bot can start without them; every error
answer becomes one typed exception (see :mod:`whizrouter.client_errors`), and transient ones
are retried with the shared :class:`~whizrouter.backoff.RetryPolicy`, honouring
``Retry-After``. The key never appears in a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from time import monotonic
from typing import Any, Final, NamedTuple

import aiohttp
import orjson
from pydantic import SecretStr

from whizrouter.backoff import RetryPolicy
from whizrouter.client_errors import (
    MAX_ERROR_BODY,
    ErrorInfo,
    error_from_response,
    error_without_answer,
)
from whizrouter.errors import ConfigurationError, MessageValidationError
from whizrouter.log_throttle import LogThrottle
from whizrouter.settings import API_KEY_ENV, BASE_URL_ENV, check_base_url
from whizrouter.tallies import ProviderCalls, endpoint_of

# The client's logger: one name to configure for everything the client reports.
logger = logging.getLogger("whizrouter.client")

#: The request header that carries the key.
KEY_HEADER: Final = "WHIZARD-KEY"


class Answer(NamedTuple):
    """A 2xx answer: its status and its decoded JSON body (None when empty or not JSON)."""

    status: int
    data: Any


class Transport:
    """Sends requests to one provider API with one key, timeout and retry policy.

    Args:
        api_key: the provider key, or None (the first request then says what to set).
        base_url: the API base URL without a trailing slash, or None (likewise).
        timeout: seconds allowed for each HTTP request (each retry gets its own).
        retry: the retry policy of transient errors.
        session: an aiohttp session to use and never close; None: one of its own, opened at
            the first request and closed by ``close``.
    """

    def __init__(
        self,
        api_key: SecretStr | None,
        base_url: str | None,
        *,
        timeout: float,
        retry: RetryPolicy,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._timeout_seconds = timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry
        self._session = session
        self._owns_session = session is None
        self._resolved: tuple[str, dict[str, str], str] | None = None
        #: Every HTTP attempt, by endpoint and answer, for the metrics.
        self.calls = ProviderCalls()
        self._retry_log = LogThrottle()

    async def close(self) -> None:
        """Close the session this transport opened; a session passed in is left open.

        The transport stays usable: a later request opens a new session.
        """
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _settings(self) -> tuple[str, dict[str, str], str]:
        """Base URL, headers and key, checked once, at the first call."""
        if self._resolved is not None:
            return self._resolved
        key = self._api_key.get_secret_value() if self._api_key is not None else ""
        if not key.strip():
            raise ConfigurationError(
                f"no provider API key: set {API_KEY_ENV} or pass api_key= to WhizardClient"
            )
        if any(ch in key for ch in "\r\n\x00"):
            raise ConfigurationError(f"the API key ({API_KEY_ENV}) contains a line break")
        if not self._base_url:
            raise ConfigurationError(
                f"no provider base URL: set {BASE_URL_ENV} or pass base_url= to WhizardClient"
            )
        check_base_url(self._base_url)
        headers = {
            KEY_HEADER: key,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._resolved = (self._base_url, headers, key)
        return self._resolved

    def base_url(self) -> str:
        """The checked base URL (the settings are checked as for a request)."""
        return self._settings()[0]

    def _http(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession()
            self._owns_session = True
        return session

    async def _attempt(
        self,
        method: str,
        url: str,
        data: Any,
        headers: dict[str, str],
        secrets: Sequence[str],
    ) -> Answer | ErrorInfo:
        """One HTTP exchange: the decoded answer, or what went wrong."""
        try:
            async with self._http().request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    body = await response.read()
                    try:
                        return Answer(status, orjson.loads(body) if body.strip() else None)
                    except orjson.JSONDecodeError:
                        return Answer(status, None)
                # An error body is only read as far as it is ever used.
                body = await _read_at_most(response, MAX_ERROR_BODY)
                return error_from_response(
                    status, response.reason, body, response.headers, secrets=secrets
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            return self._failure(exc)

    def _failure(self, exc: TimeoutError | aiohttp.ClientError) -> ErrorInfo:
        """What a request that got no usable answer tells the retry rule."""
        if isinstance(exc, TimeoutError):
            return error_without_answer(
                f"no answer within {self._timeout_seconds:g} s (timeout)",
                retryable=True,
                cause=exc,
                hint="the provider may have received the request anyway",
            )
        if isinstance(exc, aiohttp.InvalidURL):
            raise ConfigurationError(
                f"the request URL is not valid: check {BASE_URL_ENV} ({self._base_url!r})"
            ) from exc
        if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
            return error_without_answer(
                f"connection failed: {exc}",
                retryable=True,
                cause=exc,
                hint=f"check {BASE_URL_ENV} and the network",
            )
        return error_without_answer(f"request failed: {exc}", retryable=False, cause=exc)

    async def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        secrets: Sequence[str] = (),
        body: Callable[[], Any] | None = None,
        content_type: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> Answer:
        """Send one request with the retry rule; raise the typed error when it fails for good.

        The key, and ``secrets`` (values the payload carries), are scrubbed from errors.

        Args:
            method: the HTTP method.
            path: the path below the base URL.
            payload: a value sent as JSON.
            secrets: more values to keep out of errors.
            body: instead of ``payload``, makes the body of each attempt (bytes, or an
                ``aiohttp.FormData``, which can be sent only once), sent as ``content_type``
                (None: as aiohttp labels it, such as ``multipart/form-data; boundary=...``).
            content_type: the ``Content-Type`` of ``body``.
            retry: the retry policy of this request; the transport's by default.
        """
        base, headers, key = self._settings()
        hidden = (key, *secrets)
        url = base + path
        try:
            data = orjson.dumps(payload) if payload is not None else None
        except orjson.JSONEncodeError as exc:  # a lone surrogate, a value JSON has no type for
            raise MessageValidationError(
                f"the request cannot be sent as JSON ({exc}); pass strings of valid Unicode and "
                "values of JSON types (str, int, float, bool, list, dict, None)"
            ) from exc
        if body is not None:
            headers = {name: value for name, value in headers.items() if name != "Content-Type"}
            if content_type is not None:
                headers["Content-Type"] = content_type
        policy = retry if retry is not None else self._retry
        attempt = 0
        waited = 0.0
        endpoint = endpoint_of(method, path, payload)
        while True:
            sent = body() if body is not None else data
            started = monotonic()
            outcome = await self._attempt(method, url, sent, headers, hidden)
            if isinstance(outcome, Answer):
                self.calls.count(endpoint, outcome.status, monotonic() - started)
                return outcome
            self.calls.count(endpoint, outcome.http_code, monotonic() - started)
            attempt += 1
            pause = await self._pause(
                policy, outcome, attempt, waited, f"{method} {path}", endpoint
            )
            if pause is None:
                raise outcome.to_exception() from outcome.cause
            waited += pause

    async def _pause(
        self,
        policy: RetryPolicy,
        outcome: ErrorInfo,
        retry: int,
        waited: float,
        what: str,
        endpoint: str,
    ) -> float | None:
        """Wait before retry number ``retry`` and return the delay, or None: give up."""
        if not outcome.retryable:
            return None
        pause = policy.delay(retry, outcome.retry_after)
        too_long = outcome.retry_after is not None and outcome.retry_after > policy.max_delay
        if too_long or not policy.allows(retry, waited, pause):
            return None
        # While the provider is down every send retries: a line per endpoint every 10 s, the
        # rest at debug.
        logger.log(
            logging.WARNING if self._retry_log.due(endpoint) else logging.DEBUG,
            "%s failed (%s); retry %d of %d in %.2f s",
            what,
            _describe(outcome),
            retry,
            policy.attempts,
            pause,
        )
        await asyncio.sleep(policy.wait_for(pause))
        return pause

    @contextlib.asynccontextmanager
    async def stream(self, target: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """``GET`` a body to read in chunks: the open 2xx response, with the retry rule applied
        until it starts; the errors are those of :meth:`request`.

        Args:
            target: a path below the base URL, or an absolute URL (the caller has pointed it
                at the base URL: the key goes wherever it says).

        The timeout applies to connecting and to each read, not to the whole body, so a large
        file is not cut off by it.
        """
        base, _, key = self._settings()
        url = target if "://" in target else base + target
        headers = {KEY_HEADER: key, "Accept": "*/*"}
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout_seconds, sock_read=self._timeout_seconds
        )
        what = "GET " + target.split("?", 1)[0]
        attempt = 0
        waited = 0.0
        while True:
            started = monotonic()
            try:
                response = await self._http().request(
                    "GET", url, headers=headers, timeout=timeout, allow_redirects=False
                )
            except (TimeoutError, aiohttp.ClientError) as exc:
                outcome = self._failure(exc)
            else:
                if 200 <= response.status < 300:
                    self.calls.count("media", response.status, monotonic() - started)
                    try:
                        yield response
                    finally:
                        response.release()
                    return
                try:
                    error_body = await _read_at_most(response, MAX_ERROR_BODY)
                    outcome = error_from_response(
                        response.status, response.reason, error_body, response.headers, secret=key
                    )
                except (TimeoutError, aiohttp.ClientError) as exc:
                    outcome = self._failure(exc)
                finally:
                    response.release()
            self.calls.count("media", outcome.http_code, monotonic() - started)
            attempt += 1
            pause = await self._pause(self._retry, outcome, attempt, waited, what, "media")
            if pause is None:
                raise outcome.to_exception() from outcome.cause
            waited += pause


def _describe(error: ErrorInfo) -> str:
    """A short description of a failed attempt for the retry log line (never the key)."""
    if error.http_code == 0:
        return error.developer_message
    code = f" code {error.code}" if error.code is not None else ""
    message = error.developer_message
    if len(message) > 120:
        message = message[:119] + "…"
    return f"HTTP {error.http_code}{code}: {message}"


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The first ``limit`` bytes of the body (fewer if it ends first)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
