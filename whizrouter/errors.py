"""The exception tree of whizrouter.

Every exception whizrouter raises on purpose derives from ``WhizrouterError``::

    WhizrouterError
    ├── ConfigurationError        a setting is missing or malformed (names the setting)
    │   └── UnknownNumberError    an event for a receiving number that is not configured
    ├── RegistrationClosedError   a handler, router or plugin was added after the app started
    ├── PluginError               a plugin name is unknown or a plugin failed to load
    ├── InboxError                the inbox could not store or settle events
    │   ├── InboxFullError        the backlog passed its bound; retry later
    │   └── InboxUnavailableError the storage fails for now (a full disk); retried
    ├── BootstrapError            the webhook could not be registered at startup
    ├── HandlerTimeoutError       a handler ran past its timeout and was cancelled (seconds)
    ├── MessageValidationError    a message would be refused by the provider; nothing was sent
    ├── MediaTooLargeError        a media download passed its size cap; it was stopped
    ├── MediaIntegrityError       downloaded media does not match the sha256 it came with
    └── ProviderError             the provider API answered with an error
                                  (http_code, developer_message, details, code)
        ├── MediaNotFoundError    a media id is unknown or expired (404)
        └── RateLimited           the provider asked us to slow down (retry_after)

Messages say what failed and what to do next; none of them ever contains the API key or a password.
"""

from __future__ import annotations

from typing import Any


class WhizrouterError(Exception):
    """Root of every exception whizrouter raises on purpose."""


class ConfigurationError(WhizrouterError):
    """A setting is missing or has a value whizrouter cannot use."""


class UnknownNumberError(ConfigurationError):
    """An event came for a receiving number that is not configured (``WHIZARD_NUMBERS``):
    the dispatcher dead-letters it with this message instead of handling it with a key that
    belongs to another number.

    Attributes:
        number: the number the event named (a Cloud ``phone_number_id``, or the name of the
            on-premises webhook path), or None when it named none.
    """

    def __init__(self, message: str, *, number: str | None) -> None:
        super().__init__(message)
        self.number = number


class RegistrationClosedError(WhizrouterError):
    """A handler, router or plugin was registered after the app started."""


class PluginError(WhizrouterError):
    """A plugin could not be found by name or failed to load."""


class InboxError(WhizrouterError):
    """The inbox failed to store or settle events."""


class InboxUnavailableError(InboxError):
    """The inbox's storage fails for now (a full disk, a read-only file system, a lock held
    too long): the receiver answers 503 and the dispatcher tries again until it works."""


class InboxFullError(InboxError):
    """The inbox backlog passed its bound; the receiver answers 503 with Retry-After."""

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BootstrapError(WhizrouterError):
    """The webhook URL could not be registered with the provider at startup."""


class HandlerTimeoutError(WhizrouterError):
    """A handler ran past its timeout and was cancelled; the attempt counts as failed.

    Attributes:
        seconds: the timeout it ran past.
    """

    def __init__(self, message: str, *, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class MessageValidationError(WhizrouterError, ValueError):
    """An outgoing message breaks a provider rule; it was not sent."""


class ProviderError(WhizrouterError):
    """The provider API answered with an error.

    Attributes:
        http_code: the HTTP status of the answer (0 when no answer arrived).
        developer_message: the provider's own explanation, as it sent it.
        details: further detail strings from the provider, possibly empty.
        code: the provider's error code (``1006``, ``131047`` ...) when it gave one.
        retryable: whether the shared retry policy treats this error as transient.
    """

    def __init__(
        self,
        http_code: int,
        developer_message: str,
        *,
        details: list[str] | None = None,
        code: int | None = None,
        retryable: bool = False,
        hint: str = "",
        raw: Any = None,
    ) -> None:
        self.http_code = http_code
        self.developer_message = developer_message
        self.details = list(details or [])
        self.code = code
        self.retryable = retryable
        self.hint = hint
        self.raw = raw
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [f"provider answered {self.http_code}"]
        if self.code is not None:
            parts.append(f"(code {self.code})")
        text = " ".join(parts) + f": {self.developer_message or 'no message given'}"
        if self.details:
            text += " [" + "; ".join(self.details) + "]"
        if self.hint:
            text += f". {self.hint}"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(http_code={self.http_code!r}, code={self.code!r}, "
            f"developer_message={self.developer_message!r})"
        )


class RateLimited(ProviderError):
    """The provider is rate limiting us; ``retry_after`` says how long to wait, when known."""

    def __init__(
        self,
        http_code: int,
        developer_message: str,
        *,
        retry_after: float | None = None,
        details: list[str] | None = None,
        code: int | None = None,
        raw: Any = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            http_code,
            developer_message,
            details=details,
            code=code,
            retryable=True,
            hint="slow down; whizrouter retries rate limits with backoff",
            raw=raw,
        )


class MediaNotFoundError(ProviderError):
    """The provider does not know a media id (404): it expired, was deleted or never existed.

    Attributes:
        media_id: the id asked for.
    """

    def __init__(self, media_id: str, cause: ProviderError) -> None:
        self.media_id = media_id
        super().__init__(
            cause.http_code,
            cause.developer_message,
            details=cause.details,
            code=cause.code,
            retryable=False,
            hint=(
                f"media id {media_id!r} is unknown or expired: download received media "
                "promptly (ids expire), and upload a file again to get a new id"
            ),
            raw=cause.raw,
        )


class MediaTooLargeError(WhizrouterError):
    """A media download passed its size cap and was stopped; nothing is kept of it.

    Attributes:
        media_id: the media being downloaded.
        limit: the cap, in bytes.
    """

    def __init__(self, media_id: str, limit: int, size: int | None = None) -> None:
        self.media_id = media_id
        self.limit = limit
        said = f"is {size} bytes" if size is not None else "grew"
        super().__init__(
            f"media {media_id!r} {said}, over the download cap of {limit} bytes; pass a "
            "larger max_bytes= to the download, or max_media_bytes= to WhizardClient"
        )


class MediaIntegrityError(WhizrouterError):
    """Downloaded media does not hash to the sha256 the provider or the message gave.

    The download was damaged or cut; nothing is kept of it. Downloading again usually works.
    """
