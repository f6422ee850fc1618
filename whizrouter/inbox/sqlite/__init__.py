"""The ``sqlite`` inbox: the durable default, one file on local disk.

A 200 from the receiver means the events are committed to the file: they survive the process
being killed (WAL with ``synchronous=normal``) or, with ``?synchronous=full``, a power loss.
Whatever was not settled when the process stopped is handed out again after the next start.

The modules, in the order one event meets them:

- ``inbox``: ``SqliteInbox``, the ``Inbox`` protocol over one file: opening, settling,
  counts; ``appends``: storing events, with the backlog bound and the batched inserts;
  ``dead_letters``: listing, replaying and dropping dead letters, and the stats;
- ``url``: the ``sqlite:///`` URL and its options;
- ``schema``: the tables and every SQL statement on them;
- ``seen``: the two-level dedupe window (recent keys, merged into an index in key order);
- ``merge_plan``: a merge's keys, sorted on a thread and a connection of their own;
- ``writer``, ``jobs``, ``connection``: the writer thread that owns the connection and runs
  every operation in group commits, no sqlite call ever on the event loop thread;
- ``checkpointer``: the thread that copies the WAL into the file in the background;
- ``claims``: handing events out, once each per process, and the recovery after a crash;
- ``lock``: one consuming process per file.
"""

from __future__ import annotations

from whizrouter.inbox.sqlite.inbox import SqliteInbox
from whizrouter.inbox.sqlite.url import Synchronous

__all__ = ["SqliteInbox", "Synchronous"]
