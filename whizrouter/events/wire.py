"""The wire-model base and the parts that messages and statuses share.

``WireModel`` mirrors the provider's field names, keeps every field it does not declare and is
frozen; ``Contact``, ``BusinessNumber`` and ``ProviderErrorInfo`` appear on both kinds of
event. Everything here is re-exported by ``whizrouter.events``, the place to import it from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


def to_datetime(timestamp: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(timestamp), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


class WireModel(BaseModel):
    """Base of every model here: wire names, extra fields kept, immutable.

    Numbers arriving where a string is expected (a timestamp, a phone) are read as strings.
    """

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, frozen=True, coerce_numbers_to_str=True
    )


class ErrorData(WireModel):
    """The Cloud ``error_data`` object of an error: ``details`` says what went wrong."""

    details: str | None = None


class ProviderErrorInfo(WireModel):
    """An error object as the provider reports it on a message, a status or a callback.

    On-premises errors are ``{code, title, details, href}``; Cloud ones are
    ``{code, title, message, error_data{details}, href}``. Both fill ``details``.

    Attributes:
        code: the numeric error code (``470``, ``131051``, ...).
        title: a short description.
        details: the longer description (Cloud: copied from ``error_data.details``).
        href: a link to the provider's error documentation.
        message: Cloud only, usually the title again.
        error_data: Cloud only, as sent.
    """

    code: int | None = None
    title: str | None = None
    details: str | None = None
    href: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None

    @model_validator(mode="before")
    @classmethod
    def _details_from_error_data(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("details") is None:
            error_data = data.get("error_data")
            if isinstance(error_data, dict) and error_data.get("details") is not None:
                return {**data, "details": error_data["details"]}
        return data


class Profile(WireModel):
    """A sender's profile: the push ``name``; in Cloud also a ``username``."""

    name: str | None = None
    username: str | None = None


class Contact(WireModel):
    """The sender's entry in the callback's top-level ``contacts`` list.

    Not to be confused with ``ContactCard``, a contact the user shared in a ``contacts``
    message.

    Attributes:
        wa_id: the sender's WhatsApp id (digits, no ``+``).
        profile: the sender's profile.
        user_id: Cloud only, the business-scoped user id.
    """

    wa_id: str | None = None
    profile: Profile | None = None
    user_id: str | None = None

    @property
    def name(self) -> str | None:
        """The sender's push name, or ``None`` when the provider gave none."""
        return self.profile.name if self.profile is not None else None


class BusinessNumber(WireModel):
    """Which of our numbers an event concerns: the Cloud ``value.metadata``.

    ``phone_number_id`` is the id to send from; ``display_phone_number`` is what users see.
    On-premises, where the callback names no number, ``number`` is the name of the configured
    number whose webhook path (``/webhook/<name>``) received the event.
    """

    display_phone_number: str | None = None
    phone_number_id: str | None = None
    number: str | None = None
