"""Contacts messages: the shared cards, not the sender."""

from __future__ import annotations

from tests.events.samples import one
from whizrouter.events import ContactsMessage


def test_contacts_cards_are_not_the_sender() -> None:
    msg = one("onprem/contacts.json", ContactsMessage)
    assert msg.contact is not None
    assert msg.contact.name == "Dan Levi"
    (card,) = msg.contacts
    assert card.name is not None
    assert card.name.formatted_name == "Maria Kowalski"
    assert [phone.wa_id for phone in card.phones] == ["15551230042", None]
    assert card.emails[0].email == "maria.k@example.com"
    assert card.addresses[0].zip == "62701"
    assert card.org is not None
    assert card.org.company == "Example Logistics"
    assert card.birthday == "1990-04-12"
