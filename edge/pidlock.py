"""One process at a time: an exclusive ``flock`` on a lock file that holds the holder's PID.

The daemon takes one beside its status file (:class:`edge.service.StatusLock`: one daemon per status path);
``edge learn`` takes one beside the head file it changes (two runs must not interleave their read, change
and write). The lock goes with the process, even at a SIGKILL; the file stays (removing it would race the
next process's lock). A refusal names the PID in the file, so the one line a user sees says who holds it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is the PID it wrote ("unknown" if none)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by pid {holder}")
        self.path, self.holder = path, holder


class PidLock:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, trying for up to ``wait`` seconds; :class:`LockHeld` if another process keeps it,
        OSError if the lock file cannot be created."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                    os.close(fd)
                    raise LockHeld(self.path, holder) from None
                time.sleep(0.1)  # another process's lock: nothing to wait on but the file
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (idempotent). The file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> PidLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
