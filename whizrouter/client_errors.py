"""Turn a provider error answer into one typed exception, and decide whether to retry it.

The provider answers errors in several forms (PROVIDER.md §4.1), and the client must raise one
:class:`~whizrouter.errors.ProviderError` (or :class:`~whizrouter.errors.RateLimited`) whatever
the form:

* 360dialog's ``{"meta": {"success", "http_code", "developer_message", "details"}}``, also in
  camelCase (``httpCode``, ``developerMessage``);
* the on-premises client's ``{"errors": [{"code", "title", "details"}]}``, possibly with a ``meta``;
* a Graph ``{"error": {"message", "type", "code", "error_data": {"details"}}}`` (Cloud);
* an HTML page, plain text or an empty body (the provider restarting).

Which errors are retried follows PROVIDER.md §4.2: 429, 5xx and 555, timeouts and connection
errors, the on-premises codes of a busy or restarting client, Cloud throughput codes, and
360dialog's rate limit that arrives as an HTTP 400. Every other 4xx is final.
"""

from __future__ import annotations

import email.utils
import html
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from whizrouter.errors import ProviderError, RateLimited

#: HTTP statuses that are retried; 555 is 360dialog's "restarting" answer.
RETRY_HTTP = frozenset({429, 500, 502, 503, 504, 555})
#: On-premises client codes of a busy or restarting client (1015 is its rate limit).
ONPREM_RETRY_CODES = frozenset({1011, 1014, 1015, 1016, 1017, 1018, 1023})
#: Cloud (Graph) codes of throughput limits and transient failures.
CLOUD_RETRY_CODES = frozenset({130429, 131056, 80007, 4, 131000, 1, 2})
#: Codes that mean "slow down" rather than "try again": they raise ``RateLimited``.
RATE_LIMIT_CODES = frozenset({1015, 130429, 131056, 80007, 4})

_RATE_LIMIT_TEXT = re.compile(
    r"exceeded the (?:endpoint )?rate limit|rate limit (?:was |has been )?exceeded"
    r"|requests? every \d+(?:\.\d+)? seconds?",
    re.IGNORECASE,
)
_EVERY_N_SECONDS = re.compile(r"every (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
# Both linear in the body: "[^<>]" cannot backtrack into the next tag.
_HTML_TITLE = re.compile(r"<title[^<>]*>([^<]*)</title>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^<>]*>")
#: An error body longer than this is cut before it is parsed: no provider error needs more.
MAX_ERROR_BODY = 64 * 1024
#: The longest ``developer_message`` kept (a provider could echo a whole request).
MAX_MESSAGE = 2000
_SPACES = re.compile(r"\s+")
_SNIPPET = 200
_REDACTED = "***"


@dataclass(slots=True)
class ErrorInfo:
    """What one failed attempt told us, before it becomes an exception.

    Attributes:
        http_code: the HTTP status (0 when no answer arrived).
        developer_message: the provider's explanation, or our own for a missing answer.
        details: further detail strings.
        code: the provider's error code, when it gave one.
        retryable: whether the retry rule allows another attempt.
        rate_limited: whether the error means "slow down" (raised as ``RateLimited``).
        retry_after: seconds the provider asked us to wait, when it said so.
        hint: what the user should do, in a few words.
        raw: the parsed body (or a text snippet) for debugging.
        cause: the low-level exception behind an error without an answer.
    """

    http_code: int
    developer_message: str
    details: list[str] = field(default_factory=list)
    code: int | None = None
    retryable: bool = False
    rate_limited: bool = False
    retry_after: float | None = None
    hint: str = ""
    raw: Any = None
    cause: BaseException | None = None

    def to_exception(self) -> ProviderError:
        """The exception the client raises for this error."""
        if self.rate_limited:
            return RateLimited(
                self.http_code,
                self.developer_message,
                retry_after=self.retry_after,
                details=self.details,
                code=self.code,
                raw=self.raw,
            )
        return ProviderError(
            self.http_code,
            self.developer_message,
            details=self.details,
            code=self.code,
            retryable=self.retryable,
            hint=self.hint,
            raw=self.raw,
        )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: seconds, or an HTTP date.

    Args:
        value: the header value, or ``None`` when absent.
        now: the current Unix time (for tests); defaults to ``time.time()``.

    Returns:
        The seconds to wait (never negative), or ``None`` when the value is absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is unreadable
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        digits = value.strip().lstrip("-")
        # ASCII digits only ("²" is a digit to isdigit, not to int) and a sane length (int()
        # refuses more than 4300 digits).
        if digits.isascii() and digits.isdigit() and len(digits) <= 18:
            return int(value)
    return None


def _as_details(value: Any) -> list[str]:
    if value is None or value == "" or value == []:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            if item:
                out.append(item)
        elif item is not None:
            out.append(orjson.dumps(item).decode())
    return out


def _text_snippet(text: str) -> str:
    """A short, single-line description of a non-JSON body (an HTML page's title if any)."""
    match = _HTML_TITLE.search(text)
    if match:
        text = match.group(1)
    elif "<" in text and ">" in text:
        text = _HTML_TAG.sub(" ", text)
    text = _SPACES.sub(" ", html.unescape(text)).strip()
    if len(text) > _SNIPPET:
        text = text[: _SNIPPET - 1] + "…"
    return text


def _hint(http_code: int, code: int | None) -> str:
    """What to do about an error, for the exception message."""
    if http_code == 401 or code == 190:
        return "check WHIZARD_API_KEY: the provider rejected the WHIZARD-KEY header"
    if code in (470, 131047):
        return (
            "the customer's 24-hour window is closed (outside the 24-hour window): "
            "send a template message instead"
        )
    if code == 480:
        return "the recipient's identity changed; their new security code must be acknowledged"
    if (code is not None and 2000 <= code < 2100) or code in (132000, 132001, 132012):
        return "check the template name, language, namespace and parameters"
    if code in (1013, 131026, 1026):
        return "the recipient cannot receive this message (not a WhatsApp user or incapable)"
    if code in (1008, 1009, 1010, 100, 131009, 131008):
        return "a parameter is missing or invalid; see the details"
    if code == 131051:
        return "the provider does not support this message type"
    if http_code == 403:
        return "the key may not access this endpoint, or the account is blocked or unpaid"
    if http_code == 404 or code == 1006:
        return "not found: check the id, and WHIZARD_BASE_URL and WHIZARD_API_SHAPE"
    if http_code == 413:
        return "the request is too large"
    if 300 <= http_code < 400:
        return "the provider redirected the request: check WHIZARD_BASE_URL"
    if http_code == 555 or code in (1011, 1017, 1018):
        return "the provider is restarting; try again in a minute"
    if http_code >= 500 or code in ONPREM_RETRY_CODES or code in CLOUD_RETRY_CODES:
        return "a transient provider failure; try again later"
    return ""


def _parse_json_body(data: Any) -> tuple[str, list[str], int | None, int | None]:
    """Read (message, details, code, meta http code) from a JSON error body of any known form."""
    message = ""
    details: list[str] = []
    code: int | None = None
    meta_code: int | None = None
    if not isinstance(data, dict):
        return message, details, code, meta_code
    meta = data.get("meta")
    if isinstance(meta, dict):
        meta_code = _as_int(meta.get("http_code", meta.get("httpCode")))
        found = meta.get("developer_message", meta.get("developerMessage"))
        if isinstance(found, str):
            message = found
        details.extend(_as_details(meta.get("details")))
    errors = data.get("errors")
    if isinstance(errors, list):
        for index, item in enumerate(errors):
            if not isinstance(item, dict):
                details.extend(_as_details(item))
                continue
            item_code = _as_int(item.get("code"))
            title_value = item.get("title")
            title = title_value if isinstance(title_value, str) else ""
            item_details = _as_details(item.get("details") or item.get("message"))
            if index == 0:
                code = item_code
                if not message:
                    message = title
                elif title:
                    details.append(title)
            else:
                if item_code is not None or title:
                    details.append(f"{item_code}: {title}" if item_code is not None else title)
            details.extend(item_details)
    error = data.get("error")
    if isinstance(error, dict):
        graph_message = error.get("message")
        if isinstance(graph_message, str) and not message:
            message = graph_message
        if code is None:
            code = _as_int(error.get("code"))
        error_data = error.get("error_data")
        if isinstance(error_data, dict):
            details.extend(_as_details(error_data.get("details")))
        details.extend(_as_details(error.get("error_user_msg")))
    elif isinstance(error, str) and not message:
        message = error
    if not message and isinstance(data.get("message"), str):
        message = data["message"]
    return message, details, code, meta_code


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret, also in the forms a JSON echo writes it, replaced."""
    for secret in secrets:
        escaped = orjson.dumps(secret).decode()[1:-1]
        for form in {secret, escaped, escaped.replace("/", "\\/"), secret.replace("/", "\\/")}:
            if form and form in text:
                text = text.replace(form, _REDACTED)
    return text


def _scrub_data(value: Any, secrets: Sequence[str]) -> Any:
    """A decoded JSON value with every secret scrubbed from its strings (keys included)."""
    if not secrets:
        return value
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, list):
        return [_scrub_data(item, secrets) for item in value]
    if isinstance(value, dict):
        return {scrub(str(k), secrets): _scrub_data(v, secrets) for k, v in value.items()}
    return value


def error_from_response(
    status: int,
    reason: str | None,
    body: bytes,
    headers: Mapping[str, str],
    *,
    secret: str | None = None,
    secrets: Sequence[str] = (),
) -> ErrorInfo:
    """Classify a non-2xx answer.

    Args:
        status: the HTTP status.
        reason: the HTTP reason phrase, used when the body says nothing.
        body: the raw body bytes.
        headers: the answer's headers (for ``Retry-After``).
        secret: the API key, scrubbed from anything the provider echoed back.
        secrets: more values to scrub likewise (a webhook's auth header).

    Returns:
        The error's fields, its retry classification and the hint to show.
    """
    hidden = [value for value in (secret, *secrets) if value]
    text = scrub(body[:MAX_ERROR_BODY].decode("utf-8", "replace"), hidden)
    reason = scrub(reason or "", hidden)
    data: Any = None
    if text.strip():
        try:
            # Scrubbed again once decoded: an echo may escape the secret in JSON's ways
            # ("\/", "\u0041") that the text above does not show it in.
            data = _scrub_data(orjson.loads(text), hidden)
        except (orjson.JSONDecodeError, RecursionError):
            data = None
    try:
        message, details, code, meta_code = _parse_json_body(data)
    except (RecursionError, orjson.JSONEncodeError):  # absurdly nested: keep what the text says
        data, message, details, code, meta_code = None, "", [], None, None
    raw: Any = data
    if data is None and text.strip():
        raw = _text_snippet(text)
        message = message or raw
    if not message:
        message = (reason or "").strip()
    if not message:
        message = _text_snippet(text) or f"HTTP {status} with an empty body"
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    details = [d if len(d) <= MAX_MESSAGE else d[: MAX_MESSAGE - 1] + "…" for d in details[:20]]

    searchable = " ".join([message, *details])
    rate_limited = (
        status == 429
        or meta_code == 429
        or code in RATE_LIMIT_CODES
        or (status == 400 and _RATE_LIMIT_TEXT.search(searchable) is not None)
    )
    retryable = (
        rate_limited
        or status in RETRY_HTTP
        or status >= 500
        or meta_code in RETRY_HTTP
        or code in ONPREM_RETRY_CODES
        or code in CLOUD_RETRY_CODES
    )
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if retry_after is None and rate_limited:
        every = _EVERY_N_SECONDS.search(searchable)
        if every:
            retry_after = float(every.group(1))
    return ErrorInfo(
        http_code=status,
        developer_message=message,
        details=details,
        code=code,
        retryable=retryable,
        rate_limited=rate_limited,
        retry_after=retry_after,
        hint=_hint(status, code),
        raw=raw,
    )


def error_without_answer(
    developer_message: str, *, retryable: bool, cause: BaseException, hint: str = ""
) -> ErrorInfo:
    """An error for a request that got no HTTP answer (timeout, refused or reset connection).

    Such errors carry ``http_code`` 0, as :class:`~whizrouter.errors.ProviderError` documents.
    """
    return ErrorInfo(
        http_code=0,
        developer_message=developer_message,
        retryable=retryable,
        hint=hint,
        cause=cause,
    )
