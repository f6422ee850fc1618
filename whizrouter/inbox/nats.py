"""The ``nats`` inbox: JetStream storage shared by many receivers and workers on many machines.

What lives on the server (``S`` is the ``stream`` setting, ``WHIZROUTER`` by default)::

    stream S           work queue, file storage, discard new; subjects S.events.<p>
                       where p = crc32(conversation) % partitions
      consumer p<p>    one durable pull consumer per partition, explicit acks
    stream S_DEAD      dead letters on subject S.dead (limits retention)
    KV S_SEEN          dedupe keys (sha256 of the event key), TTL = dedupe_seconds
    KV S_LEASES        p.<p> = the worker fetching partition p, w.<worker> = its heartbeat;
                       TTL = lease_ttl
    KV S_SPARED        <seq> = deliveries of event seq that need no counting, and
    KV S_RUNS          <seq> = its handler runs known to have started and not succeeded
                       (see ``whizrouter.inbox.nats_spared``), TTL = dedupe_seconds

This module owns the connection, the streams, appends, settling and counts. The message
format (body and ``Whiz-*`` headers) is ``whizrouter.inbox.nats_messages``; the dead-letter
stream, ``whizrouter.inbox.nats_dead``.
Order per conversation across workers (partition leases, fetching, takeover, hand-out order)
lives in ``whizrouter.inbox.nats_partitions``; ``claim`` starts it lazily, so a receiver that
only appends never fetches or heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import re
import secrets
import socket
import time
import zlib
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from whizrouter.defaults import DEFAULT_DEDUPE_SECONDS, DEFAULT_MAX_BACKLOG
from whizrouter.errors import ConfigurationError, InboxError, InboxFullError
from whizrouter.inbox.base import (
    DeadLetter,
    Inbox,
    LostCallback,
    RawEvent,
    StoredEvent,
)
from whizrouter.inbox.nats_dead import DeadLetterStream
from whizrouter.inbox.nats_messages import (
    event_headers,
    stored_event,
)
from whizrouter.inbox.nats_partitions import PartitionSettings, PartitionWorker
from whizrouter.inbox.nats_spared import add_one, count_of, set_count
from whizrouter.inbox.nats_url import MAX_SECONDS, parse_nats_url, redact
from whizrouter.log_throttle import LogThrottle

logger = logging.getLogger(__name__)


_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
#: JetStream API error codes for a stream refusing writes at its limits (discard new).
_FULL_CODES = {10047, 10077, 10078}
_BACKLOG_REFRESH = 1.0
_SETTLE_TIMEOUT = 5.0


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
        if not servers:
            raise ConfigurationError("WHIZROUTER_INBOX: the NATS URL names no server")
        if not _NAME_RE.match(stream):
            raise ConfigurationError(
                f"WHIZROUTER_INBOX: stream={stream!r} may only hold letters, digits, - and _"
            )
        if not 1 <= partitions <= 4096:
            raise ConfigurationError("WHIZROUTER_INBOX: partitions must be between 1 and 4096")
        # The same bounds as in the URL (``nats_url.MAX_SECONDS``), for an inbox built in
        # code; the dedupe window has no upper bound of its own.
        durations = (
            ("ack_wait", ack_wait, MAX_SECONDS),
            ("lease_ttl", lease_ttl, MAX_SECONDS),
            ("duplicate_window", duplicate_window, MAX_SECONDS),
            ("dedupe_seconds", dedupe_seconds, math.inf),
        )
        for name, seconds, most in durations:
            if not (math.isfinite(seconds) and 0 < seconds <= most):
                bound = f" and at most {most:,}" if math.isfinite(most) else ""
                raise ConfigurationError(
                    f"NatsInbox: {name}={seconds!r} must be a number of seconds above 0{bound}"
                )
        self._servers = list(servers)
        self.create_streams = True
        #: Called with the error when the connection closes for good while open (the app
        #: sets it, and stops).
        self.on_lost: LostCallback | None = None
        self._stream = stream
        self._partitions = partitions
        self._replicas = replicas
        self._max_bytes = max_bytes
        self._max_msgs = max_msgs
        self._duplicate_window = duplicate_window
        self._ack_wait = ack_wait
        self._lease_ttl = lease_ttl
        self._max_ack_pending = max_ack_pending
        self._connect_options = dict(connect_options or {})
        self._max_backlog = max_backlog
        self._dedupe_seconds = dedupe_seconds
        try:
            self.description = ",".join(redact(s) for s in self._servers) + f"?stream={stream}"
        except ValueError as exc:  # a port that is not a number
            raise ConfigurationError(
                f"WHIZROUTER_INBOX: malformed NATS server URL: {exc}"
            ) from None
        self._dead = DeadLetterStream(
            self._require_open,
            stream,
            events_subject=self._events_subject,
            replayed=self._changed_backlog,
        )
        self._seen_bucket = f"{stream}_SEEN"
        self._lease_bucket = f"{stream}_LEASES"
        self._spared_bucket = f"{stream}_SPARED"
        self._runs_bucket = f"{stream}_RUNS"
        self._worker_id = "-".join(
            (
                re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40],
                str(os.getpid()),
                secrets.token_hex(4),
            )
        )
        self._nc: Client | None = None
        self._jsc: JetStreamContext | None = None
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._counted = 0
        self._net = 0
        self._net_when_counted = 0
        self._closed = False
        self._error_log = LogThrottle()
        self._unstarted: set[int] = set()  # claimed events the app said never started
        self._released = False  # the app said which claimed events never started
        self._fetcher = PartitionWorker(
            PartitionSettings(
                stream=self._stream,
                lease_bucket=self._lease_bucket,
                partitions=self._partitions,
                ack_wait=self._ack_wait,
                lease_ttl=self._lease_ttl,
                max_ack_pending=self._max_ack_pending,
                description=self.description,
            ),
            worker_id=self._worker_id,
            js=self._require_open,
            leases=lambda: self._leases,
            decode=self._decode,
            spawn=self._spawn,
        )
        self._fetcher.spare = lambda seqs: add_one(self._spared, seqs)

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
        return self._require_open()

    def _require_open(self) -> JetStreamContext:
        if self._jsc is None or self._closed:
            raise InboxError(f"the NATS inbox {self.description} is not open; call open() first")
        return self._jsc

    async def open(self) -> None:
        """Connect, and create (or check) the streams and buckets; fetch nothing yet.

        Raises:
            ConfigurationError: the stream exists with another partition count.
            InboxError: NATS could not be reached or refused to create the streams.
        """
        self._reset_runtime()
        options: dict[str, Any] = {
            "name": "whizrouter",
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
            **self._connect_options,
        }
        # Once running, reconnect for as long as it takes (-1); but a server that is not
        # there at start fails the start after a few tries instead of hanging it.
        running_attempts = options.pop("max_reconnect_attempts", -1)
        self._nc = Client()
        try:
            await self._nc.connect(
                self._servers,
                max_reconnect_attempts=running_attempts if 0 < running_attempts < 3 else 3,
                **options,
            )
            self._nc.options["max_reconnect_attempts"] = running_attempts
            self._check_tls(options)
            self._jsc = self._nc.jetstream()
            await self._ensure_streams()
        except (nats.errors.Error, OSError) as exc:
            await self._abandon()
            raise InboxError(f"cannot open the NATS inbox {self.description}: {exc}") from exc
        except BaseException:
            await self._abandon()
            raise
        with contextlib.suppress(nats.errors.Error):
            await self._count_backlog()
        self._spawn(self._count_backlog_forever())

    def _check_tls(self, options: Mapping[str, Any]) -> None:
        """Refuse a ``tls://`` URL whose server turned out not to use TLS.

        nats-py starts TLS only when the server's greeting asks for it, so without this
        check a ``tls://`` URL talks in clear text to a server without TLS.

        Raises:
            ConfigurationError: the URL asks for TLS and the connection is not encrypted.
        """
        wanted = any(server.startswith("tls://") for server in self._servers)
        if not wanted or options.get("tls_handshake_first"):
            return  # with handshake first, nothing at all is sent before TLS is up
        # The server's greeting, as nats-py keeps it: nats-py has no public accessor.
        greeting: Mapping[str, Any] = getattr(self._nc, "_server_info", None) or {}
        if not greeting.get("tls_required"):
            raise ConfigurationError(
                f"the inbox URL {self.description} asks for TLS (tls://), but the NATS "
                "server does not use it, so the connection was not encrypted and any "
                "credentials in the URL went out in clear text. Enable TLS on the server "
                "(a tls block in its configuration), or use nats:// on a network you trust"
            )

    async def _abandon(self) -> None:
        self._closed = True
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = self._jsc = None

    async def _ensure_streams(self) -> None:
        js = self._js
        partitions = str(self._partitions)
        try:
            info = await js.stream_info(self._stream)
        except nats.js.errors.NotFoundError:
            if not self.create_streams:
                servers = ", ".join(redact(server) for server in self._servers)
                raise InboxError(
                    f"there is no NATS stream {self._stream} on {servers}: no bot has used "
                    "this inbox yet. Check stream= in the inbox URL against the bot's"
                ) from None
            info = await js.add_stream(
                api.StreamConfig(
                    name=self._stream,
                    description="whizrouter events",
                    subjects=[f"{self._stream}.events.*"],
                    retention=api.RetentionPolicy.WORK_QUEUE,
                    storage=api.StorageType.FILE,
                    # Refuse new events at the limit rather than drop acknowledged ones.
                    discard=api.DiscardPolicy.NEW,
                    max_bytes=self._max_bytes,
                    max_msgs=self._max_msgs,
                    num_replicas=self._replicas,
                    # Never longer than the dedupe window: a key must be forgotten in time.
                    duplicate_window=min(self._duplicate_window, self._dedupe_seconds),
                    metadata={"whizrouter.partitions": partitions},
                )
            )
        found = (info.config.metadata or {}).get("whizrouter.partitions")
        if found != partitions:
            made = f"was made with partitions={found}" if found else "was not made by whizrouter"
            raise ConfigurationError(
                f"the NATS stream {self._stream} {made}, the URL says partitions={partitions}; "
                "changing it would break per-conversation order. Use the same value, or "
                "another stream= once the old one is drained"
            )
        await self._dead.ensure(self._replicas)
        self._seen = await self._bucket(self._seen_bucket, self._dedupe_seconds)
        self._leases = await self._bucket(self._lease_bucket, self._lease_ttl)
        self._spared = await self._bucket(self._spared_bucket, self._dedupe_seconds)
        self._runs = await self._bucket(self._runs_bucket, self._dedupe_seconds)

    async def _decode(self, msg: Msg) -> StoredEvent:
        """A fetched message's event. A redelivery's attempts are its counted runs, and it is
        ``maybe_ran`` when a worker died holding it (a delivery that was not spared)."""
        event = stored_event(msg)
        earlier = event.attempts  # every earlier delivery
        if not earlier:
            return event
        spared = await count_of(self._spared, event.seq)
        runs = await count_of(self._runs, event.seq)
        return replace(event, attempts=runs, maybe_ran=earlier > spared)

    async def _bucket(self, name: str, ttl: float) -> KeyValue:
        js = self._js
        try:
            kv = await js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            return await js.create_key_value(
                api.KeyValueConfig(bucket=name, ttl=ttl, replicas=self._replicas, direct=True)
            )
        status = await kv.status()
        if status.ttl is not None and abs(status.ttl - ttl) > 0.001:
            logger.warning(
                "NATS bucket %s keeps keys %.1f s, this process asked for %.1f s; the bucket wins",
                name,
                status.ttl,
                ttl,
            )
        return kv

    async def release(self, unstarted: Sequence[int]) -> None:
        """The app stops cleanly: claimed events in ``unstarted`` never reached a handler (or
        their run is counted already); the other claimed ones were cut short.

        ``close`` then hands them all back with their deliveries spared, as it always does
        for events fetched but never claimed, and counts a run for each one cut short (see
        ``whizrouter.inbox.nats_spared``).
        """
        self._released = True
        self._unstarted.update(unstarted)

    async def count_run(self, seq: int) -> None:
        """Count a handler run of a ``maybe_ran`` event before it starts."""
        try:
            await add_one(self._runs, [seq])
        except nats.errors.Error as exc:
            raise InboxError(f"cannot reach NATS: {exc}") from exc

    async def close(self) -> None:
        """Stop fetching, hand unsettled events back to JetStream, release leases, drain."""
        if self._nc is None or self._closed:
            return
        # Flags as well as cancellation: asyncio.wait_for in Python 3.11 can swallow a
        # cancellation that races with a message arriving, and a loop must still end.
        self._stopping = True
        self._fetcher.stop()
        tasks = list(self._tasks)
        # Let the loops end on their own first: a fetch cancelled mid-way drops what it had
        # received, which then comes back after ack_wait looking as if a handler had run it.
        if tasks:
            await asyncio.wait(tasks, timeout=self._fetcher.stop_within)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        held = self._fetcher.held
        unstarted = [s for s, h in held.items() if not h.claimed or s in self._unstarted]
        # Known to have started only when the app said which did not (a clean stop).
        cut_short = (
            [s for s, h in held.items() if h.claimed and s not in self._unstarted]
            if self._released
            else []
        )
        if unstarted or cut_short:
            try:
                await asyncio.wait_for(
                    asyncio.gather(
                        add_one(self._runs, cut_short), add_one(self._spared, unstarted + cut_short)
                    ),
                    timeout=5.0,
                )
            except Exception as exc:  # the next start treats them as possibly started
                logger.warning(
                    "NATS inbox %s: could not record how %d handed-back events stand: %s",
                    self.description,
                    len(unstarted) + len(cut_short),
                    exc,
                )
        with contextlib.suppress(Exception):
            # Nak'd events (ascending, so they come back in order) go to the next owner now,
            # not after ack_wait. Bounded: a dead server must not hang shutdown.
            await asyncio.wait_for(self._fetcher.hand_back(), timeout=max(2.0, self._fetcher.tick))
        self._closed = True
        self._fetcher.wake()
        nc, self._nc, self._jsc = self._nc, None, None
        try:
            await nc.drain()  # flushes the naks and progress acks sent without a reply
        except Exception:  # already closed or reconnecting: close is all that is left
            with contextlib.suppress(Exception):
                await nc.close()

    async def _on_error(self, exc: Exception) -> None:
        # While the server is down, every reconnect attempt (ten a second by default) fails
        # the same way: one line every 10 s says it, with how many there were.
        if not self._error_log.due():
            return
        more = self._error_log.held_back()
        logger.warning(
            "NATS inbox %s: %s%s",
            self.description,
            exc,
            f" ({more} more errors in the last {self._error_log.interval:g} s)" if more else "",
        )

    async def _on_disconnected(self) -> None:
        if self._closed:
            return
        reconnecting = self._nc is not None and self._nc.options.get("allow_reconnect", True)
        logger.warning(
            "NATS inbox %s: disconnected%s",
            self.description,
            ", reconnecting" if reconnecting else " (reconnect=false: the app stops)",
        )

    async def _on_reconnected(self) -> None:
        logger.info("NATS inbox %s: reconnected", self.description)

    async def _on_closed(self) -> None:
        # Closed without our asking: reconnecting was off (reconnect=false) or ran out of
        # max_reconnect_attempts. Nothing here can work again, so the app stops and a
        # supervisor can start a fresh process, instead of answering 503 for ever.
        if self._closed or self._stopping or self.on_lost is None:
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

    def health(self) -> dict[str, object]:
        """Fields for ``GET /healthz`` that only this backend knows.

        Returns:
            ``connected`` (False while reconnecting to NATS: the app then reports itself
            unavailable), ``worker_id`` (also the value of this worker's leases in the
            ``S_LEASES`` bucket), ``owned_partitions`` (empty in a receiver) and ``held``
            (events fetched and not yet settled by this process).
        """
        return {
            "connected": self._nc is not None and self._nc.is_connected,
            "worker_id": self._worker_id,
            "owned_partitions": list(self.owned_partitions),
            "held": len(self._fetcher.held),
        }

    def _events_subject(self, conversation: str) -> str:
        # crc32, not hash(): every process must map a conversation to the same partition.
        return f"{self._stream}.events.{zlib.crc32(conversation.encode()) % self._partitions}"

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
        js = self._js
        if self._nc is not None and not self._nc.is_connected:
            # Publishing now would wait out its timeout while the request hangs: refuse at
            # once, and the provider resends after the 503's Retry-After.
            raise InboxError(
                f"the NATS inbox {self.description} is disconnected and reconnecting; "
                "nothing was stored. Check that the NATS server is up"
            )
        backlog = self.backlog()
        # An empty inbox takes any callback, however many events: none is refused forever.
        if backlog and backlog + len(events) > self._max_backlog:
            raise InboxFullError(
                f"the NATS inbox holds about {self.backlog()} unsettled events (bound "
                f"{self._max_backlog}); the provider will retry, or raise max_backlog"
            )
        batch: list[tuple[RawEvent, str]] = []
        for event in events:
            digest = hashlib.sha256(event.key.encode()).hexdigest()
            if all(digest != d for _, d in batch):
                batch.append((event, digest))
        seen = await asyncio.gather(*(self._was_seen(d) for _, d in batch), return_exceptions=True)
        fresh: list[tuple[RawEvent, str, dict[str, str]]] = []
        for (event, digest), known in zip(batch, seen, strict=True):
            if isinstance(known, BaseException):
                raise InboxError(f"cannot check dedupe keys in NATS: {known}") from known
            if not known:
                fresh.append((event, digest, event_headers(event)))
        self._check_sizes(fresh)
        stored: list[str] = []
        new = 0
        failure: BaseException | None = None
        for event, digest, headers in fresh:
            subject = self._events_subject(event.conversation)
            try:
                ack = await js.publish(subject, event.body, headers=headers)
            except (nats.errors.Error, OSError) as exc:
                failure = exc
                break
            stored.append(digest)
            new += 0 if ack.duplicate else 1
        self._changed_backlog(new)
        now = repr(time.time()).encode()
        remembered = await asyncio.gather(
            *(self._seen.put(d, now) for d in stored), return_exceptions=True
        )
        failure = failure or next((r for r in remembered if isinstance(r, BaseException)), None)
        if failure is None:
            return new
        if isinstance(failure, nats.js.errors.APIError) and (
            failure.err_code in _FULL_CODES or "maximum" in (failure.description or "")
        ):
            raise InboxFullError(
                f"the NATS stream {self._stream} is at its limits ({failure.description}); "
                "the provider will retry, or raise max_bytes/max_msgs"
            ) from failure
        raise InboxError(f"NATS did not store the events: {failure!r}") from failure

    def _check_sizes(self, fresh: list[tuple[RawEvent, str, dict[str, str]]]) -> None:
        # The server counts headers too and drops the connection past its limit.
        limit = self._nc.max_payload if self._nc is not None else 0
        for event, _, headers in fresh:
            size = len(event.body) + 12 + sum(len(k) + len(v) + 4 for k, v in headers.items())
            if size > limit:
                raise InboxError(
                    f"event {event.key!r} takes {size} bytes, over the NATS server's "
                    f"max_payload of {limit}; raise max_payload in the server configuration"
                )

    async def _was_seen(self, digest: str) -> bool:
        try:
            entry = await self._seen.get(digest)
        except nats.js.errors.KeyNotFoundError:
            return False
        # The bucket drops keys only about a second late; the stored time is exact.
        try:
            return time.time() - float(entry.value or b"0") < self._dedupe_seconds
        except ValueError:
            return True

    def backlog(self) -> int:
        """The stream's unsettled events at the last count, plus this process' changes since.

        Counted on the server every second, so it covers every receiver and worker; exact
        when this process is the only one.
        """
        return max(0, self._counted + self._net - self._net_when_counted)

    def _changed_backlog(self, delta: int) -> None:
        self._net += delta

    async def _count_backlog(self) -> None:
        net_before = self._net
        info = await self._js.stream_info(self._stream)
        # This process' changes made while the count was on its way may be in it or not:
        # they are added from before it, so one may count twice until the next count, a
        # second later. (Taking counts only when this process was quiet left every process
        # adding up its own changes alone for seconds under load, far apart from each other.)
        self._counted = info.state.messages
        self._net_when_counted = net_before

    async def _count_backlog_forever(self) -> None:
        while not self._stopping:
            await asyncio.sleep(_BACKLOG_REFRESH)
            with contextlib.suppress(nats.errors.Error, InboxError):
                await self._count_backlog()

    # -- handing out -----------------------------------------------------------------------

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Wait for events of partitions this worker leases; see ``Inbox.claim``.

        The first call makes this process a worker: it starts heartbeats, leases and fetches.
        """
        self._require_open()
        return await self._fetcher.claim(limit)

    async def ack(self, seqs: Sequence[int]) -> None:
        """Settle events, and return once JetStream confirmed it (they never come back)."""
        await self._settle(seqs, Msg.Ack.Ack)

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Count the failed runs, and tell JetStream the event is still being worked on, so
        it is not redelivered."""
        held = self._fetcher.held.get(seq)
        if held is not None:
            try:
                await held.msg.in_progress()
                await set_count(self._runs, seq, attempts)
            except nats.errors.Error as exc:
                raise InboxError(f"cannot reach NATS: {exc}") from exc

    async def dead(self, seq: int, *, handler: str, attempts: int, error: str) -> None:
        """Store the event in the dead-letter stream, then terminate its delivery."""
        held = self._fetcher.held.get(seq)
        if held is None:
            return
        try:
            await self._dead.store(held.event, handler=handler, attempts=attempts, error=error)
        except nats.errors.Error as exc:
            # Hand it back rather than keep it claimed forever: it comes round again later.
            self._fetcher.held.pop(seq, None)
            with contextlib.suppress(nats.errors.Error):
                await held.msg.nak(delay=self._ack_wait)
            raise InboxError(f"cannot store dead letter {seq} in NATS: {exc}") from exc
        await self._settle([seq], Msg.Ack.Term)

    async def _settle(self, seqs: Sequence[int], verdict: bytes) -> None:
        nc = self._nc
        held = [h for h in (self._fetcher.held.pop(seq, None) for seq in seqs) if h is not None]
        if nc is None or not held:
            return
        replies = await asyncio.gather(
            *(nc.request(h.msg.reply, verdict, timeout=_SETTLE_TIMEOUT) for h in held),
            return_exceptions=True,
        )
        self._changed_backlog(-len(held))
        failed = [r for r in replies if isinstance(r, BaseException)]
        if failed:
            raise InboxError(
                f"NATS did not confirm settling {len(failed)} of {len(held)} events "
                f"({failed[0]!r}); JetStream redelivers them after ack_wait"
            ) from failed[0]

    # -- background tasks ------------------------------------------------------------------

    def _spawn(self, loop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(loop)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- counts and dead letters -----------------------------------------------------------

    async def stats(self) -> dict[str, int]:
        """Counts from the server: ``pending`` (stored, unsettled), ``dead``, ``seen``."""
        js = self._js
        try:
            events, dead, seen = await asyncio.gather(
                js.stream_info(self._stream),
                js.stream_info(self._dead.name),
                js.stream_info(f"KV_{self._seen_bucket}"),
            )
        except nats.errors.Error as exc:
            raise InboxError(f"cannot read counts from NATS: {exc}") from exc
        return {
            "pending": events.state.messages,
            "dead": dead.state.messages,
            "seen": seen.state.messages,
        }

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters; works from any process, workers running or not."""
        return [letter for _, letter in await self._dead.scan(limit)]

    async def replay(self, seqs: Sequence[int] | None = None) -> int:
        """Publish dead letters as new events (all when ``seqs`` is None), then delete them."""
        return await self._dead.replay(seqs)

    async def drop(self, seqs: Sequence[int]) -> int:
        """Delete dead letters for good."""
        return await self._dead.drop(seqs)
