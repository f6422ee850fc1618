"""Inbox backends and the factory that picks one from a URL.

- ``base``: the ``Inbox`` protocol (with the capabilities of durable backends and their no-op
  defaults) and the events it stores;
- ``memory``: fast, lost when the process ends;
- ``sqlite``: the durable default, one file on local disk (a package, one module per part);
- ``nats``: JetStream, shared by many processes on many machines (a package too);
- ``factory``: ``inbox_from_url``, what ``WHIZROUTER_INBOX`` names.
"""

from __future__ import annotations

from whizrouter.inbox.base import DeadLetter, Inbox, JournalEntry, RawEvent, StoredEvent
from whizrouter.inbox.memory import MemoryInbox

__all__ = ["DeadLetter", "Inbox", "JournalEntry", "MemoryInbox", "RawEvent", "StoredEvent"]
