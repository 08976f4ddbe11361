"""An on-disk message spool: one JSON file per message, written atomically, bounded, oldest first.

A producer ``put``s a message (a dict with a ``targets`` list); a worker reads
``pending()`` oldest first, ``update``s a message when some of its targets are
done and ``delete``s it when all are. Files are named by a sequence number
(``000000000042.json``), not by the clock: a Pi without a real-time clock may
boot with an earlier date than the one it stopped at, and order must survive
that. Bounds by count and by total bytes drop the oldest messages and count
them. An exclusive ``flock`` on ``.lock`` keeps a second writer (another sink,
another daemon) out. Files are mode 0600: a message may hold a snapshot.

The index (sizes and targets of every message) lives in memory, so counting
what is queued per target costs no disk reads.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.atomic import write_bytes_atomic
from edge.errors import EdgeError

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{12})\.json$")


@dataclass
class _Entry:
    size: int
    targets: tuple[str, ...]
    created: float


class Spool:
    """Messages waiting in ``folder``; ``max_messages`` and ``max_bytes`` bound it (oldest dropped)."""

    def __init__(self, folder: str | os.PathLike[str], max_messages: int, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_messages = max(1, int(max_messages))
        self.max_bytes = max(1, int(max_bytes))
        self.dropped = 0  # messages dropped for the bounds, or unreadable
        self.dropped_by_target: dict[str, int] = {}
        self._index: dict[str, _Entry] = {}  # file name -> entry, oldest first
        self._next = 1
        self._lock = threading.Lock()
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ open / close

    def open(self) -> None:
        """Create the folder (0700), take its lock, index what an earlier run left. EdgeError if in use."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise EdgeError(f"cannot use the spool folder {self.folder}: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise EdgeError(f"spool folder {self.folder} is in use by another notify sink or daemon: "
                            "give each notify sink its own spool_dir") from None
        self._lock_fd = fd
        with self._lock:
            self._scan()

    def _scan(self) -> None:
        names = []
        for path in self.folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a write cut short by a crash
            elif _NAME.match(path.name):
                names.append(path.name)
        for name in sorted(names):
            message = self._load(name)
            if message is None:
                continue
            self._index[name] = _Entry(size=(self.folder / name).stat().st_size,
                                       targets=tuple(message.get("targets", ())), created=float(message.get("created", 0)))
            self._next = max(self._next, int(name[:12]) + 1)
        if self._index:
            logger.info("spool %s: %d messages from an earlier run", self.folder, len(self._index))

    def _load(self, name: str) -> dict[str, Any] | None:
        """A message, or None (an unreadable file is removed and counted as dropped)."""
        path = self.folder / name
        try:
            message = json.loads(path.read_bytes())
            if not isinstance(message, dict) or not isinstance(message.get("targets", []), list):
                raise ValueError("not a spooled message")
            return message
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            logger.warning("spool: dropping unreadable message %s (%s)", name, err)
            path.unlink(missing_ok=True)
            self.dropped += 1
            return None

    def close(self) -> None:
        """Release the lock; what is spooled stays for the next start. Idempotent."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    # ------------------------------------------------------------------ producer

    def put(self, message: dict[str, Any]) -> str:
        """Write ``message`` as one new file (atomically); then drop the oldest beyond the bounds.

        Returns its name. Raises OSError (disk full, read-only) with nothing half written.
        """
        data = json.dumps(message, separators=(",", ":")).encode("utf-8")
        with self._lock:
            name = f"{self._next:012d}.json"
            write_bytes_atomic(self.folder / name, data, mode=0o600)
            self._next += 1
            self._index[name] = _Entry(size=len(data), targets=tuple(message.get("targets", ())),
                                       created=float(message.get("created", 0)))
            total = sum(e.size for e in self._index.values())
            while len(self._index) > self.max_messages or (total > self.max_bytes and len(self._index) > 1):
                oldest = next(iter(self._index))
                total -= self._index[oldest].size
                self._drop(oldest, "the spool is full")
        return name

    def _drop(self, name: str, why: str) -> None:
        entry = self._index.pop(name)
        (self.folder / name).unlink(missing_ok=True)
        self.dropped += 1
        for target in entry.targets:
            self.dropped_by_target[target] = self.dropped_by_target.get(target, 0) + 1
        logger.warning("spool: dropped message %s (%s)", name, why)

    # ------------------------------------------------------------------ worker

    def pending(self) -> list[str]:
        with self._lock:
            return list(self._index)

    def read(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            if name not in self._index:
                return None
            message = self._load(name)
            if message is None:
                self._index.pop(name, None)
            return message

    def update(self, name: str, message: dict[str, Any]) -> None:
        """Rewrite a message (fewer targets left); a message dropped meanwhile stays dropped."""
        data = json.dumps(message, separators=(",", ":")).encode("utf-8")
        with self._lock:
            if name not in self._index:
                return
            write_bytes_atomic(self.folder / name, data, mode=0o600)
            entry = self._index[name]
            entry.size, entry.targets = len(data), tuple(message.get("targets", ()))

    def delete(self, name: str) -> None:
        with self._lock:
            if self._index.pop(name, None) is not None:
                (self.folder / name).unlink(missing_ok=True)

    def expire(self, before: float) -> int:
        """Drop messages created (wall clock) before ``before``; how many."""
        with self._lock:
            old = [n for n, e in self._index.items() if e.created and e.created < before]
            for name in old:
                self._drop(name, "too old")
        return len(old)

    # ------------------------------------------------------------------ counts

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def bytes(self) -> int:
        with self._lock:
            return sum(e.size for e in self._index.values())

    def queued(self, target: str) -> int:
        with self._lock:
            return sum(1 for e in self._index.values() if target in e.targets)
