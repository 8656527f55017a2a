"""Exclusive ownership of an output folder by one live process.

The lock is an ``fcntl.flock`` on a file inside the folder: the kernel releases it when the
holding process exits or is killed, so a crashed run never leaves the folder locked and the next
run takes it over without asking. The file holds who took it (host, pid, start time), for the
message a second run gets. The file itself stays (deleting a lock file races with a process
about to lock it); it is empty of meaning while nobody holds the lock.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None

LOCK_NAME = ".auditdm.lock"


class RunLockHeld(Exception):
    """Another live process holds the lock; ``holder`` is what it wrote about itself."""

    def __init__(self, path: Path, holder: dict[str, Any]):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by {describe_holder(holder)}")


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return "another process (it has not yet said which)"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {holder['pid']} on host {holder.get('host', '?')}, started {when}"


class RunLock:
    """``acquire()`` once (raises :class:`RunLockHeld` at once when taken), ``release()`` when done."""

    def __init__(self, folder: str | Path, **about: Any):
        self.path = Path(folder) / LOCK_NAME
        self.about = about
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None or fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockHeld(self.path, self.read_holder()) from None
        except BaseException:
            os.close(fd)
            raise
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), **self.about}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    def read_holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
