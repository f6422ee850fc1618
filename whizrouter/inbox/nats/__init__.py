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
                       (see ``spared``), TTL = dedupe_seconds

The modules:

- ``inbox``: ``NatsInbox``, the ``Inbox`` protocol over the parts below, and their lifecycle;
- ``url``: the ``nats://`` URL, its inbox settings and connection options;
- ``config``: the inbox's settings, checked once and grouped for the parts built on them;
- ``open_parts``: the parts that live from one ``open`` to its ``close``, built together;
- ``loops``: the background tasks of an open inbox, and ending them at ``close``;
- ``connection``: connecting, TLS, reconnecting, and a connection lost for good;
- ``streams``: the events stream and the KV buckets, created or checked at ``open``;
- ``backlog``: the stream's unsettled events, counted on the server once a second;
- ``reports``: what the inbox reports without changing anything (``stats``,
  ``oldest_waiting``, ``health``, the backlog's count);
- ``append``: the dedupe check and the publishes of ``append``;
- ``messages``: the message format (body and ``Whiz-*`` headers);
- ``leases`` and ``partitions``: order per conversation across workers (partition leases,
  fetching, takeover, hand-out order); ``claim`` starts them lazily;
- ``settling`` and ``spared``: acks, failed runs, dead letters, a clean stop, and the counts
  that tell a crash's redelivery from a clean hand-back;
- ``dead``: the dead-letter stream;
- ``journal`` and ``state``: each event's send journal and each conversation's state, in KV
  buckets beside the stream.
"""

from __future__ import annotations

from whizrouter.inbox.nats.inbox import NatsInbox

__all__ = ["NatsInbox"]
