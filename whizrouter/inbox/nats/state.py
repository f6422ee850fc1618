"""Conversation state in a JetStream key-value bucket beside the events stream.

The bucket ``<stream>_STATE`` holds one key per conversation; its values are the JSON of
``whizrouter.inbox.stored_state`` and the bucket's ``max_age`` is the state TTL (a key lives
that long after its last write; a bucket keeps the TTL it was made with).

Writes happen when events are acknowledged, before the ack, each one conditional on the
revision its handler read (``update`` with ``last``, or ``create`` when there was none): a
write on a record that changed meanwhile is refused, and its event is handed back to run again
from the new state. A crash between the write and the ack replays the event; the record names
the event that wrote it (``seq``), so the replay finds it settled and is only acknowledged.
For the same reason a cleared state is written as an empty record, not deleted.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from whizrouter.errors import InboxError
from whizrouter.inbox.stored_state import StateWrite, StoredState, decode_state, encode_state

logger = logging.getLogger("whizrouter.inbox.nats")

_PLAIN_KEY = re.compile(r"[-_=A-Za-z0-9]+")


def state_key(conversation: str) -> str:
    """The bucket key of a conversation (KV keys take few characters; others go as hex)."""
    if _PLAIN_KEY.fullmatch(conversation):
        return f"c.{conversation}"
    return f"h.{conversation.encode().hex()}"


class NatsStates:
    """The state bucket of one NATS inbox.

    Args:
        stream: the events stream's name; the bucket is ``<stream>_STATE``.
        replicas: JetStream replicas of the bucket.
    """

    def __init__(self, stream: str, replicas: int) -> None:
        self.bucket = f"{stream}_STATE"
        self._replicas = replicas
        self._kv: KeyValue | None = None

    async def open(self, js: JetStreamContext, ttl: float) -> None:
        """Open the bucket, creating it with ``ttl`` when it is missing."""
        try:
            self._kv = await js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            self._kv = await js.create_key_value(
                api.KeyValueConfig(
                    bucket=self.bucket, ttl=ttl, replicas=self._replicas, history=1, direct=True
                )
            )

    def _bucket(self) -> KeyValue:
        if self._kv is None:
            raise InboxError(f"the NATS state bucket {self.bucket} is not open")
        return self._kv

    async def load(self, conversation: str) -> StoredState | None:
        """The conversation's record (an empty one when its state was cleared), or None."""
        try:
            entry = await self._bucket().get(state_key(conversation))
        except nats.js.errors.KeyNotFoundError:
            return None
        except nats.errors.Error as exc:
            raise InboxError(f"cannot read conversation state from NATS: {exc}") from exc
        if entry.value is None:
            return None
        return decode_state(entry.value, entry.revision or 0)

    async def apply(self, writes: Sequence[StateWrite]) -> None:
        """Write each record if it is still at the revision read; mark refused ones failed.

        Raises:
            InboxError: NATS could not be reached; writes not marked were not made.
        """
        kv = self._bucket()
        for write in writes:
            expected = write.expected_revision()
            if expected is None:  # it read a write that was refused: so is it
                write.failed = True
                continue
            write.updated_at = time.time()
            value = encode_state(write.state, write.data, write.seq, write.updated_at)
            key = state_key(write.conversation)
            try:
                if expected:
                    write.revision = await kv.update(key, value, last=expected)
                else:
                    write.revision = await kv.create(key, value)
            except nats.js.errors.KeyWrongLastSequenceError:
                write.failed = True
            except nats.errors.Error as exc:
                raise InboxError(f"cannot write conversation state to NATS: {exc}") from exc

    async def put(self, conversation: str, state: str | None, data: dict[str, Any]) -> None:
        """Write a record outside any event (seq 0), whatever its revision."""
        try:
            await self._bucket().put(
                state_key(conversation), encode_state(state, data, 0, time.time())
            )
        except nats.errors.Error as exc:
            raise InboxError(f"cannot write conversation state to NATS: {exc}") from exc
