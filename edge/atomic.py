"""Replace a file atomically: readers (``edge status``, someone's ``scp``) never see half of it.

The one home for write-then-rename in edge: :func:`write_bytes_atomic` for data
in memory, :func:`commit` for a temporary file written elsewhere (a download).
With ``durable`` the data and the rename itself are fsynced (the file, then its
folder), so a power cut on an SD card leaves the old file or the new one, never
an empty one; status files rewritten every second skip that (they live in /run).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable (best effort: some filesystems refuse to fsync a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(tmp: str | os.PathLike[str], path: str | os.PathLike[str], mode: int = 0o644, durable: bool = True) -> None:
    """Move the finished temporary file ``tmp`` over ``path`` (same folder), readable by others (``mode``)."""
    os.chmod(tmp, mode)
    if durable:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(Path(path).parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644, durable: bool = False) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it over ``path``.

    The temp file is removed on any failure (a full disk, Ctrl-C). ``mode``
    replaces mkstemp's 0600, so other users (the SSH user) can read the result.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        commit(tmp, path, mode, durable)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
