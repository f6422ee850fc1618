"""The NATS inbox's dead letters: the ``<stream>_DEAD`` stream, kept until replayed or dropped.

A dead letter is the event's body with its ``Whiz-*`` headers plus the handler, attempts and
error (``whizrouter.inbox.nats.messages``). Listing, replaying and dropping read the stream
directly, so they work from any process (the CLI) while workers run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import cast

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api

from whizrouter.errors import InboxError
from whizrouter.inbox.base import DeadLetter, StoredEvent
from whizrouter.inbox.nats.messages import (
    MSG_ID,
    dead_letter,
    dead_letter_headers,
    event_headers,
    quote_header,
)


class DeadLetterStream:
    """The dead letters of one events stream.

    Args:
        js: the JetStream context of the open connection.
        stream: the events stream; dead letters go to ``<stream>_DEAD``.
        events_subject: the subject a replayed event is published on, given its conversation.
        replayed: told how many events a replay put back (the inbox's backlog grows).
    """

    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        stream: str,
        *,
        events_subject: Callable[[str], str],
        replayed: Callable[[int], None],
    ) -> None:
        self.name = f"{stream}_DEAD"
        self._subject = f"{stream}.dead"
        self._js = js
        self._events_subject = events_subject
        self._replayed = replayed

    async def ensure(self, replicas: int) -> None:
        """Create the stream unless it exists (with whatever limits it was given)."""
        with contextlib.suppress(nats.js.errors.BadRequestError):
            await self._js().add_stream(
                api.StreamConfig(
                    name=self.name,
                    description="whizrouter dead letters",
                    subjects=[self._subject],
                    storage=api.StorageType.FILE,
                    discard=api.DiscardPolicy.NEW,
                    num_replicas=replicas,
                    duplicate_window=120.0,
                )
            )

    async def store(self, event: StoredEvent, *, handler: str, attempts: int, error: str) -> None:
        """Publish the dead letter of ``event``.

        Raises:
            nats.errors.Error: NATS did not store it.
        """
        headers = dead_letter_headers(event, handler=handler, attempts=attempts, error=error)
        await self._js().publish(self._subject, event.body, headers=headers)

    async def scan(self, limit: int | None = None) -> list[tuple[int, DeadLetter]]:
        """The oldest dead letters, with their sequence in the dead-letter stream."""
        letters: list[tuple[int, DeadLetter]] = []
        cursor = 1
        while limit is None or len(letters) < limit:
            try:
                raw = await self._js().get_msg(
                    self.name, seq=cursor, subject=self._subject, next=True
                )
            except nats.js.errors.NotFoundError:
                break
            except nats.errors.Error as exc:
                raise InboxError(f"cannot read dead letters from NATS: {exc}") from exc
            letters.append((cast(int, raw.seq), dead_letter(raw)))
            cursor = cast(int, raw.seq) + 1
        return letters

    async def replay(self, seqs: Sequence[int] | None) -> int:
        """Publish dead letters as new events (all when ``seqs`` is None), then delete them."""
        wanted = None if seqs is None else set(seqs)
        replayed = 0
        for dead_seq, letter in await self.scan():
            if wanted is not None and letter.seq not in wanted:
                continue
            headers = {
                **event_headers(letter),
                # Not the event key (JetStream would drop it as a duplicate), but stable per
                # dead letter, so a replay retried after a crash does not publish it twice.
                MSG_ID: quote_header(f"{letter.key}#replay{dead_seq}"),
            }
            js = self._js()
            try:
                await js.publish(
                    self._events_subject(letter.conversation), letter.body, headers=headers
                )
                await js.delete_msg(self.name, dead_seq)
            except nats.errors.Error as exc:
                raise InboxError(f"cannot replay dead letter {letter.seq}: {exc}") from exc
            replayed += 1
            self._replayed(1)
        return replayed

    async def drop(self, seqs: Sequence[int]) -> int:
        """Delete dead letters for good; return how many were deleted."""
        wanted = set(seqs)
        dropped = 0
        for dead_seq, letter in await self.scan():
            if letter.seq in wanted:
                try:
                    await self._js().delete_msg(self.name, dead_seq)
                except nats.errors.Error as exc:
                    raise InboxError(f"cannot drop dead letter {letter.seq}: {exc}") from exc
                dropped += 1
        return dropped
