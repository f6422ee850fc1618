"""Contacts messages: the contact cards a user shared, and their parts.

Not the sender: that is ``Message.contact``, the ``Contact`` of ``whizrouter.events.wire``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from whizrouter.events.message import Message
from whizrouter.events.wire import WireModel


class ContactName(WireModel):
    """The name on a shared contact card (``formatted_name`` is the displayed one)."""

    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    prefix: str | None = None
    suffix: str | None = None


class ContactPhone(WireModel):
    """A phone on a shared contact card; ``wa_id`` is set when the number is on WhatsApp."""

    phone: str | None = None
    type: str | None = None
    wa_id: str | None = None


class ContactEmail(WireModel):
    """An email address on a shared contact card (``type``: ``HOME``, ``WORK``, ...)."""

    email: str | None = None
    type: str | None = None


class ContactAddress(WireModel):
    """A postal address on a shared contact card (``country_code``: two letters)."""

    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class ContactOrg(WireModel):
    """The organization on a shared contact card: ``company``, ``department``, ``title``."""

    company: str | None = None
    department: str | None = None
    title: str | None = None


class ContactUrl(WireModel):
    """A web address on a shared contact card (``type``: ``HOME``, ``WORK``, ...)."""

    url: str | None = None
    type: str | None = None


class ContactCard(WireModel):
    """A contact the user shared (one item of a ``contacts`` message).

    Attributes:
        name: the contact's name.
        phones: phone numbers.
        emails: email addresses.
        addresses: postal addresses.
        org: organization.
        urls: web addresses.
        birthday: ``YYYY-MM-DD``.
    """

    name: ContactName | None = None
    phones: list[ContactPhone] = Field(default_factory=list)
    emails: list[ContactEmail] = Field(default_factory=list)
    addresses: list[ContactAddress] = Field(default_factory=list)
    org: ContactOrg | None = None
    urls: list[ContactUrl] = Field(default_factory=list)
    birthday: str | None = None


class ContactsMessage(Message):
    """Contacts the user shared.

    Attributes:
        contacts: the shared cards. Not the sender: that is ``contact``, from the callback's
            top-level ``contacts`` list.
    """

    type: Literal["contacts"]
    contacts: list[ContactCard]
