"""One consuming process per sqlite inbox file: an exclusive ``flock`` on ``<db>.lock``.

The first ``claim`` takes the lock and holds it until ``close``; a second consumer's claim
fails with an ``InboxError`` that names the holder's pid and the two ways out. The kernel drops
the lock when the process dies, even by SIGKILL. Others that never claim (``whizrouter dead
list|replay|drop``, ``whizrouter inbox stats``, a receiver-only process) take no lock and may
open the file at any time. The writer thread takes it, never the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from whizrouter.errors import InboxError


class ConsumerLock:
    """The claim on a file: an exclusive ``flock`` on ``<db>.lock``, from a first claim to close.

    A ``flock`` belongs to one open file description: the kernel drops it when the process
    dies, SIGKILL included, and two opens in one process exclude each other. The file is
    created once and never deleted (a process could lock a file just unlinked by another);
    the holder writes its pid into it for the message the next claimer gets.

    Args:
        database: the inbox's database file; the lock file sits beside it.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this inbox holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting (on the writer thread); holding it already is fine.

        Raises:
            InboxError: another holder has it, or the lock file cannot be opened.
        """
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InboxError(
                f"cannot open the lock file {self.path} of the sqlite inbox: {exc}; the "
                "directory of the inbox file must be writable"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if not isinstance(exc, BlockingIOError):
                raise InboxError(f"cannot lock {self.path}: {exc}") from exc
            if holder == os.getpid():
                who, pid = "another inbox in this process is", ""
            else:
                who, pid = "another process is", f" (pid {holder})" if holder else ""
            refusal = InboxError(
                f"{who} already handling events from {self.database}{pid}; run one bot per "
                "inbox file, or use a nats:// inbox to scale out"
            )
            raise refusal from None
        with contextlib.suppress(OSError):  # the pid only improves the message
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the descriptor drops it); not holding it is fine."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    """The pid a lock holder wrote into the lock file, if it did yet."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
