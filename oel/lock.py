"""One writer per directory: an flock'd file that records who holds it (pid, host, since)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from oel.errors import OELError


class DirectoryLock:
    """Exclusive, non-blocking lock on `path`. The OS releases it if the holder dies, so it never goes stale."""

    def __init__(self, path: str | Path, what: str):
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise OELError(f"{self.what} cannot be written ({err.strerror}): is {self.path.parent} read-only? "
                           "Read commands still work") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OELError(f"{self.what} is locked by {self.holder()}; wait for it to finish, "
                           "or use a Chroma server (memory_url) for many writers") from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.write(fd, json.dumps(info).encode())
        self._fd = fd
        return self

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
            return f"pid {info['pid']} on {info['host']} since {info['since']}"
        except (OSError, ValueError, KeyError):
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
