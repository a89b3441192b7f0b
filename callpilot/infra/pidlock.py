"""One process per state dir: an exclusive ``fcntl`` lock on a pid file.

The kernel drops the lock when the process dies, however it dies (kill -9 included), so a
stale pid file never blocks a restart; a second process that cannot take the lock touches
nothing (it only reads the holder's pid for its message).
"""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


class AlreadyRunning(RuntimeError):
    """Another live process holds the lock; ``pid`` is its pid when it could be read."""

    def __init__(self, path: Path, pid: int | None):
        super().__init__(f"{path} is locked by pid {pid if pid is not None else '?'}")
        self.path, self.pid = path, pid


class PidLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._file: IO[str] | None = None

    def acquire(self) -> "PidLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(handle)
            handle.close()
            raise AlreadyRunning(self.path, pid) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        logger.debug("locked %s (pid %d)", self.path, os.getpid())
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()          # closing drops the lock; the file stays (harmless)
            self._file = None

    def __enter__(self) -> "PidLock":
        return self if self._file is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(handle: IO[str]) -> int | None:
    handle.seek(0)
    text = handle.read().strip()
    return int(text) if text.isdigit() else None
