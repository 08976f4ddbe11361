"""Talking to systemd and to people: sd_notify, watchdog pings, the status file.

sd_notify is a datagram to ``$NOTIFY_SOCKET`` (a path, or an abstract name
starting with ``@``): a few lines of stdlib, as in systemd's
``man/notify-selfcontained-example.py``. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.atomic import write_bytes_atomic
from edge.errors import EdgeError
from edge.pidlock import LockHeld, PidLock

logger = logging.getLogger(__name__)


class Notifier:
    """sd_notify(3) over an AF_UNIX datagram socket; silent when not under systemd."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._sock: socket.socket | None = None
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        self.watchdog_interval = 0.0  # seconds between WATCHDOG=1 pings (half of WatchdogSec), 0 = off
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6 / 2

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> bool:
        if not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), addr)
            return True
        except OSError as err:
            logger.debug("sd_notify to %s failed: %s", self.address, err)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def status_candidates() -> list[Path]:
    """Where status.json may be, in the order the daemon picks its folder."""
    out = []
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        out.append(Path(runtime) / "status.json")
    out.append(Path("/run/edge/status.json"))
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        out.append(Path(xdg) / "edge" / "status.json")
    out.append(Path(tempfile.gettempdir()) / f"edge-{os.getuid()}" / "status.json")
    return out


def default_status_path() -> Path:
    """The first candidate whose folder exists and is writable (or can be made)."""
    for path in status_candidates():
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return path
    return status_candidates()[-1]


def find_status(configured: str | None = None) -> Path | None:
    """The status file to show: the configured one, else the newest existing candidate."""
    if configured:
        return Path(configured)
    found = [p for p in status_candidates() if p.exists()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temp file beside ``path`` and rename it over: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


class StatusLock(PidLock):
    """One daemon per status path: an exclusive ``flock`` on ``<status file>.lock`` beside it, holding the PID.

    A second daemon on the same path (a ``sudo edge run`` dry run next to the service) would make
    ``edge status`` flip between the two and interleave their logs: it refuses to start instead, with
    one line naming the PID that holds the lock (edge/pidlock.py).
    """

    def __init__(self, status_path: Path) -> None:
        self.status_path = Path(status_path)
        super().__init__(self.status_path.with_name(self.status_path.name + ".lock"))

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, or EdgeError naming its holder and the way out."""
        try:
            super().acquire(wait)
        except LockHeld as held:
            raise EdgeError(f"another edge daemon (pid {held.holder}) is running with the status file "
                            f"{self.status_path}: stop it (`sudo systemctl stop edge` if it is the service), or "
                            "give this one a status file of its own (--status PATH, or status.path in its config)"
                            ) from None
        except OSError as err:
            raise EdgeError(f"cannot create the lock {self.path} beside the status file: {err.strerror}: "
                            "set status.path (or --status) to a writable place") from None
