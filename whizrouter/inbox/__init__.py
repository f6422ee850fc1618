"""Inbox backends and the factory that picks one from a URL."""

from __future__ import annotations

from whizrouter.inbox.base import DeadLetter, Inbox, RawEvent, StoredEvent
from whizrouter.inbox.memory import MemoryInbox

__all__ = ["DeadLetter", "Inbox", "MemoryInbox", "RawEvent", "StoredEvent"]
