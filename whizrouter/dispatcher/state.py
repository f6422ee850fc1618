"""The dispatcher's one state, its transitions, and the waits that end when it changes.

::

    RUNNING --drain, memory inbox--> DRAINING --workers ended--> STOPPED
    RUNNING --drain, durable inbox--> LEAVING --workers ended--> STOPPED
    RUNNING --the claim loop failed--> STOPPED

Every part of the dispatcher reads ``Lifecycle.state``; only ``stop_intake`` and
``workers_ended`` change it. A task that must wait for a change waits on one of the two
events here: a retry pause or a wait for failing storage ends early once the state leaves
RUNNING, and ``drain`` waits for STOPPED.
"""

from __future__ import annotations

import enum
import logging

import anyio

from whizrouter.errors import InboxUnavailableError
from whizrouter.log_throttle import LogThrottle

log = logging.getLogger("whizrouter.dispatcher")


class State(enum.Enum):
    """Where the dispatcher is between its start and its stop."""

    #: Claiming events and handling them.
    RUNNING = "running"
    #: Stopping with a memory inbox, which loses what it keeps: nothing more is claimed, and
    #: the workers handle every claimed event (retries included) until the grace period ends.
    DRAINING = "draining"
    #: Stopping with a durable inbox: nothing more is claimed, the runs under way finish, and
    #: every event not started stays in the inbox for the next start.
    LEAVING = "leaving"
    #: The workers have ended.
    STOPPED = "stopped"


RUNNING = State.RUNNING
DRAINING = State.DRAINING
LEAVING = State.LEAVING
STOPPED = State.STOPPED


class Lifecycle:
    """The dispatcher's state, shared by its parts, and the waits on its changes."""

    def __init__(self) -> None:
        self.state = RUNNING
        self._left_running = anyio.Event()
        self._stopped = anyio.Event()
        # Storage failures in a row (InboxUnavailableError), for the wait before the next try.
        self._trouble_streak = 0
        self._trouble_log = LogThrottle()

    def stop_intake(self, *, durable: bool) -> bool:
        """RUNNING becomes LEAVING (durable inbox) or DRAINING; False if it was not RUNNING."""
        if self.state is not RUNNING:
            return False
        self.state = LEAVING if durable else DRAINING
        self._left_running.set()
        return True

    def workers_ended(self) -> None:
        """Whatever the state, the workers are gone: STOPPED."""
        self.state = STOPPED
        self._left_running.set()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        """Wait until the workers have ended."""
        await self._stopped.wait()

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the state leaves RUNNING meanwhile."""
        with anyio.move_on_after(seconds):
            await self._left_running.wait()

    async def wait_out(self, exc: InboxUnavailableError, doing: str) -> None:
        """Wait a little before trying again to ``doing`` while the inbox's storage fails
        (longer each time in a row), and say so at most once every 10 s."""
        self._trouble_streak += 1
        if self._trouble_log.due():
            log.error("the inbox cannot %s now, trying again: %s", doing, exc)
        await self.pause(min(0.05 * 2**self._trouble_streak, 5.0))

    def storage_works(self) -> None:
        """The inbox answered: the next failure waits the shortest time again."""
        self._trouble_streak = 0
