"""Facts about the board this runs on, for ``edge bench`` (saved with its result) and ``edge doctor``.

Read from files with paths as arguments, so tests pass made-up ones.
"""

from __future__ import annotations

import platform
from pathlib import Path


def board_model(path: str = "/proc/device-tree/model") -> str:
    """``Raspberry Pi 5 Model B Rev 1.0``, or "" when not a device-tree board."""
    try:
        return Path(path).read_bytes().rstrip(b"\0\n").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def os_name(path: str = "/etc/os-release") -> str:
    """PRETTY_NAME from os-release (``Debian GNU/Linux 12 (bookworm)``), or ""."""
    try:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key == "PRETTY_NAME":
                return value.strip().strip('"')
    except OSError:
        pass
    return ""


def board_name() -> str:
    """The board (``Raspberry Pi 5 Model B Rev 1.0``), or the machine type off a Pi (``x86_64``)."""
    return board_model() or platform.machine()


__all__ = ["board_model", "board_name", "os_name"]
