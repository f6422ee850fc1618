"""``NatsInbox``: the ``Inbox`` protocol on NATS JetStream; see the package docstring.

This module runs the parts' lifecycle (``config`` checks the settings, ``open_parts`` builds
what lives from one ``open`` to its ``close``): ``open`` connects (``connection``), creates or
checks what lives on the server (``streams``, ``dead``) and starts counting the backlog
(``backlog``); ``append`` is ``append``'s; ``claim`` starts the partition worker
(``partitions``, ``leases``) lazily, so a receiver that only appends never fetches or
heartbeats; settling is ``settling``'s; counts and health are ``reports``'; ``close`` ends the
loops (``loops``) and hands back what the worker holds, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from whizrouter.defaults import DEFAULT_DEDUPE_SECONDS, DEFAULT_MAX_BACKLOG
from whizrouter.errors import InboxError
from whizrouter.inbox.base import (
    DeadLetter,
    Inbox,
    JournalEntry,
    LostCallback,
    RawEvent,
    StoredEvent,
)
from whizrouter.inbox.nats.config import inbox_config
from whizrouter.inbox.nats.connection import Connection
from whizrouter.inbox.nats.dead import DeadLetterStream
from whizrouter.inbox.nats.journal import NatsJournal
from whizrouter.inbox.nats.leases import new_worker_id
from whizrouter.inbox.nats.messages import stored_event
from whizrouter.inbox.nats.open_parts import build_open_parts
from whizrouter.inbox.nats.spared import with_counted_runs
from whizrouter.inbox.nats.state import NatsStates
from whizrouter.inbox.nats.streams import Buckets, ensure_events_stream, open_buckets
from whizrouter.inbox.nats.url import parse_nats_url, redact
from whizrouter.inbox.stored_state import StateWrite, StoredState


class NatsInbox(Inbox):
    """An inbox on NATS JetStream: many receivers append, many workers claim, order holds.

    Build it with ``from_url`` (what ``WHIZROUTER_INBOX`` does) or directly.

    Args:
        servers: NATS server URLs; credentials in a URL are passed to the client, never logged.
        stream: name of the events stream; also names the dead-letter stream and KV buckets.
        partitions: ordering partitions; fixed once the stream exists.
        replicas: JetStream replicas for the streams and buckets (1, or 3 on a cluster).
        max_bytes: size bound of the events stream (-1: the account's limit); past it
            ``append`` raises ``InboxFullError``, nothing acknowledged is ever discarded.
        max_msgs: message-count bound of the events stream (-1: none).
        duplicate_window: JetStream's own dedupe window in seconds (``Nats-Msg-Id``).
        ack_wait: seconds after which JetStream redelivers an event whose worker went silent.
        lease_ttl: seconds after which a silent worker's partitions may be taken over.
        max_ack_pending: unsettled events one partition may have out at once.
        connect_options: extra keyword arguments for ``nats.connect``.
        max_backlog: unsettled events above which ``append`` refuses with ``InboxFullError``.
        dedupe_seconds: how long a dedupe key is remembered.

    Attributes:
        create_streams: whether ``open`` creates a stream that does not exist (True); the
            inspection commands set it False, so a mistyped ``stream=`` is an error instead
            of a new, empty stream.
    """

    durable = True
    keeps_state = True  # in a KV bucket beside the stream (``whizrouter.inbox.nats.state``)

    def __init__(
        self,
        servers: Sequence[str] = ("nats://127.0.0.1:4222",),
        *,
        stream: str = "WHIZROUTER",
        partitions: int = 16,
        replicas: int = 1,
        max_bytes: int = -1,
        max_msgs: int = -1,
        duplicate_window: float = 120.0,
        ack_wait: float = 30.0,
        lease_ttl: float = 10.0,
        max_ack_pending: int = 1000,
        connect_options: Mapping[str, Any] | None = None,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
    ) -> None:
        self._config = inbox_config(
            servers,
            stream=stream,
            partitions=partitions,
            replicas=replicas,
            max_bytes=max_bytes,
            max_msgs=max_msgs,
            duplicate_window=duplicate_window,
            ack_wait=ack_wait,
            lease_ttl=lease_ttl,
            max_ack_pending=max_ack_pending,
            max_backlog=max_backlog,
            dedupe_seconds=dedupe_seconds,
        )
        self._layout = self._config.layout
        self.description = self._config.description
        self.create_streams = True
        #: Called with the error when the connection closes for good while open (the app
        #: sets it, and stops).
        self.on_lost: LostCallback | None = None
        self._connection = Connection(
            self._config.servers, connect_options or {}, self.description, lost=self._lost
        )
        self._dead = DeadLetterStream(
            self._connection.js,
            stream,
            events_subject=self._layout.events_subject,
            replayed=self._changed_backlog,
        )
        self._worker_id = new_worker_id()
        self._buckets: Buckets | None = None
        self._journal = NatsJournal()
        self._states = NatsStates(stream, replicas)
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        """The parts that live from one ``open`` to its ``close`` (see ``open_parts``)."""
        parts = build_open_parts(
            self._config,
            self._connection,
            self._dead,
            worker_id=self._worker_id,
            buckets=self._open_buckets,
            decode=self._decode,
        )
        self._loops, self._fetcher, self._reports = parts.loops, parts.fetcher, parts.reports
        self._backlog, self._appender, self._settler = parts.backlog, parts.appender, parts.settler

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
    ) -> NatsInbox:
        """Build from ``nats://[user:pass@]host:4222[,nats://host2:4222][?option=value&...]``.

        Options: ``stream``, ``partitions``, ``replicas``, ``max_bytes``, ``max_msgs``,
        ``duplicate_window``, ``ack_wait``, ``lease_ttl``, ``max_ack_pending`` (see the class),
        and for the connection ``name``, ``creds`` (a .creds file), ``nkey`` (a seed file),
        ``tls_ca``, ``tls_cert``, ``tls_key``, ``tls_hostname``, ``tls_handshake_first``,
        ``reconnect``, ``max_reconnect_attempts``, ``reconnect_time_wait``, ``connect_timeout``.

        Raises:
            ConfigurationError: an option is unknown or malformed.
        """
        parsed = parse_nats_url(url)
        return cls(
            parsed.servers,
            connect_options=parsed.connect,
            max_backlog=max_backlog,
            dedupe_seconds=dedupe_seconds,
            **parsed.settings,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def _js(self) -> JetStreamContext:
        return self._connection.js()

    def _open_buckets(self) -> Buckets:
        if self._buckets is None:
            raise InboxError(f"the NATS inbox {self.description} is not open; call open() first")
        return self._buckets

    async def open(self) -> None:
        """Connect, and create (or check) the streams and buckets; fetch nothing yet.

        Raises:
            ConfigurationError: the stream exists with another partition count.
            InboxError: NATS could not be reached or refused to create the streams.
        """
        self._reset_runtime()
        try:
            await self._connection.open()
            js = self._connection.js()
            servers = ", ".join(redact(server) for server in self._config.servers)
            await ensure_events_stream(
                js, self._layout, create=self.create_streams, servers=servers
            )
            await self._dead.ensure(self._layout.replicas)
            self._buckets = await open_buckets(js, self._layout)
            await self._journal.open(js, self._layout)
            await self._states.open(js, self.state_ttl)
        except (nats.errors.Error, OSError) as exc:
            await self._connection.abandon()
            raise InboxError(f"cannot open the NATS inbox {self.description}: {exc}") from exc
        except BaseException:
            await self._connection.abandon()
            raise
        with contextlib.suppress(nats.errors.Error):
            await self._backlog.refresh()
        self._loops.spawn(self._backlog.refresh_forever(lambda: self._loops.stopping))

    async def close(self) -> None:
        """Stop fetching, hand unsettled events back to JetStream, release leases, drain."""
        if self._connection.client is None or self._connection.closed:
            return
        # Flags as well as cancellation: asyncio.wait_for in Python 3.11 can swallow a
        # cancellation that races with a message arriving, and a loop must still end.
        self._loops.stopping = True
        self._fetcher.stop()
        await self._loops.stop(self._fetcher.stop_within)
        await self._settler.record_hand_back()
        with contextlib.suppress(Exception):
            # Nak'd events (ascending, so they come back in order) go to the next owner now,
            # not after ack_wait. Bounded: a dead server must not hang shutdown.
            await asyncio.wait_for(self._fetcher.hand_back(), timeout=max(2.0, self._fetcher.tick))
        self._fetcher.wake()
        await self._connection.close()  # drains: flushes the naks and progress acks

    def _lost(self) -> None:
        # Closed without our asking: reconnecting was off (reconnect=false) or ran out of
        # max_reconnect_attempts. Nothing here can work again, so the app stops and a
        # supervisor can start a fresh process, instead of answering 503 for ever.
        if self._loops.stopping or self.on_lost is None:
            return
        self.on_lost(
            InboxError(
                f"the connection of the NATS inbox {self.description} closed for good "
                "(reconnect=false, or max_reconnect_attempts ran out); restart the process, "
                "or let NATS reconnect as long as it takes (leave those options out)"
            )
        )

    # -- receiving -------------------------------------------------------------------------

    @property
    def owned_partitions(self) -> tuple[int, ...]:
        """The partitions this process fetches right now (empty until ``claim`` is called)."""
        return self._fetcher.owned_partitions

    async def append(self, events: Sequence[RawEvent]) -> int:
        """Publish new events and wait for JetStream to store them; see ``Inbox.append``.

        Events are published one after the other in their order, so seqs follow arrival.
        Publish first, remember the key second: a crash in between leaves the event stored
        and its key unremembered, so a provider retry inside ``duplicate_window`` is dropped by
        JetStream (same ``Nats-Msg-Id``) and a later one is at worst dispatched twice. The
        other order could lose an event for good (key remembered, event never stored).
        JetStream cannot take back a stored event: when a publish fails, the ones before it
        stay stored and remembered, none after it is sent, and the provider's retry (the
        append raised) stores the rest in order.

        Raises:
            InboxFullError: the backlog or the stream's limits are reached; nothing was stored.
            InboxError: NATS failed; the provider's retry completes the append.
        """
        return await self._appender.append(events)

    def backlog(self) -> int:
        """The stream's unsettled events at the last count, plus this process' changes since.

        Counted on the server every second, so it covers every receiver and worker; exact
        when this process is the only one.
        """
        return self._backlog.value()

    def _changed_backlog(self, delta: int) -> None:
        self._backlog.changed(delta)

    # -- handing out -----------------------------------------------------------------------

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Wait for events of partitions this worker leases; see ``Inbox.claim``.

        The first call makes this process a worker: it starts heartbeats, leases and fetches.
        """
        self._connection.js()  # raises if not open
        return await self._fetcher.claim(limit)

    async def _decode(self, msg: Msg) -> StoredEvent:
        """A fetched message's event, with its runs counted (see ``spared``)."""
        buckets = self._open_buckets()
        event = await with_counted_runs(stored_event(msg), spared=buckets.spared, runs=buckets.runs)
        self._journal.claimed(event, msg)
        return event

    # -- settling (``settling``) -----------------------------------------------------------

    async def ack(self, seqs: Sequence[int]) -> None:
        """Settle events, and return once JetStream confirmed it (they never come back);
        then delete their send journals (``whizrouter.inbox.nats.journal``)."""
        journal = self._journal
        if journal.writing:
            await journal.written()
        if not (journal.held or journal.suspects):
            await self._settler.ack(seqs)
            return
        keys = self._held_keys(seqs)
        await self._settler.ack(seqs)
        await journal.delete(journal.settling(keys))

    def _held_keys(self, seqs: Sequence[int]) -> list[str]:
        held = self._fetcher.held
        return [h.event.key for h in (held.get(seq) for seq in seqs) if h is not None]

    async def ack_with_state(self, seqs: Sequence[int], writes: Sequence[StateWrite]) -> None:
        """Write the state records (each checked against the revision read), then ack; an
        event whose write was refused is handed back to run again instead."""
        await self._states.apply(writes)
        refused = {write.seq for write in writes if write.failed}
        await self.ack([seq for seq in seqs if seq not in refused] if refused else seqs)
        if refused:
            await self._settler.hand_back(sorted(refused))

    async def load_state(self, conversation: str) -> StoredState | None:
        """The conversation's record from the state bucket."""
        return await self._states.load(conversation)

    async def put_state(self, conversation: str, state: str | None, data: dict[str, Any]) -> None:
        """Write a conversation's record outside any event (the CLI, a test)."""
        await self._states.put(conversation, state, data)

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Count the failed runs, and tell JetStream the event is still being worked on, so
        it is not redelivered."""
        await self._settler.record_attempt(seq, attempts)

    async def dead(self, seq: int, *, handler: str, attempts: int, error: str) -> None:
        """Store the event in the dead-letter stream, then terminate its delivery; its send
        journal stays in the bucket for a replay."""
        keys = self._held_keys([seq])
        await self._settler.dead(seq, handler=handler, attempts=attempts, error=error)
        self._journal.settling(keys)

    async def count_run(self, seq: int) -> None:
        """Count a handler run of a ``maybe_ran`` event before it starts."""
        await self._settler.count_run(seq)

    async def release(self, unstarted: Sequence[int]) -> None:
        """The app stops cleanly: claimed events in ``unstarted`` never reached a handler (or
        their run is counted already); the other claimed ones were cut short.

        ``close`` then hands them all back with their deliveries spared, as it always does
        for events fetched but never claimed, and counts a run for each one cut short (see
        ``whizrouter.inbox.nats.spared``).
        """
        self._settler.release(unstarted)

    # -- reports (``reports``) -------------------------------------------------------------

    async def stats(self) -> dict[str, int]:
        """Counts from the server: ``pending`` (stored, unsettled), ``dead``, ``seen``."""
        return await self._reports.stats()

    async def oldest_waiting(self) -> float | None:
        """When the oldest unsettled event was stored: the stream keeps only those (work-queue
        retention: an ack or a dead letter removes the message), so its first message's time.
        Two requests to the server, made only when ``/metrics`` is scraped."""
        return await self._reports.oldest_waiting()

    def health(self) -> dict[str, object]:
        """Fields for ``GET /healthz`` that only this backend knows.

        Returns:
            ``connected`` (False while reconnecting to NATS: the app then reports itself
            unavailable), ``worker_id`` (also the value of this worker's leases in the
            ``S_LEASES`` bucket), ``owned_partitions`` (empty in a receiver) and ``held``
            (events fetched and not yet settled by this process).
        """
        return self._reports.health()

    # -- dead letters ----------------------------------------------------------------------

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters; works from any process, workers running or not."""
        return [letter for _, letter in await self._dead.scan(limit)]

    async def replay(self, seqs: Sequence[int] | None = None) -> int:
        """Publish dead letters as new events (all when ``seqs`` is None), then delete them."""
        return await self._dead.replay(seqs)

    async def drop(self, seqs: Sequence[int]) -> int:
        """Delete dead letters for good, with their send journals."""
        wanted = set(seqs)
        keys = [letter.key for _, letter in await self._dead.scan() if letter.seq in wanted]
        dropped = await self._dead.drop(seqs)
        await self._journal.delete(keys)
        return dropped

    async def journal_entries(self, event_key: str) -> dict[str, JournalEntry]:
        """The event's journaled sends; read from the bucket only for an event that may
        have been run before (see ``whizrouter.inbox.nats.journal``)."""
        return await self._journal.entries(event_key)

    def journal_record(self, event_key: str, slot: str, entry: JournalEntry) -> Awaitable[None]:
        """Start storing a journaled send in the bucket; ``ack`` waits for it."""
        return self._journal.record(event_key, slot, entry)
