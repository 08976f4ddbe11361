"""`edge models fetch` and install-from-a-folder: download (progress bar), check sha256, commit atomically.

Imported only by ``edge models fetch`` (and install.sh through it): the daemon
never loads urllib, tarfile or the progress bar. Every write goes to a temporary
file in the target folder and is moved into place (edge/atomic.py) only after
its sha256 checked out, so a failed or interrupted fetch (network error, Ctrl-C,
disk full) never leaves a half-written model where the daemon would load it.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import http.client
import json
import logging
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from edge import __version__
from edge.atomic import commit
from edge.errors import EdgeError
from edge.models.manifest import Entry, Manifest, _manifest
from edge.models.store import CHUNK, DOWNLOADS, MODEL_DIR_ENV, _status, model_dir, read_downloads

logger = logging.getLogger(__name__)

ARCHIVE_MEMBER = "1.tflite"  # the one file taken out of a Kaggle .tar.gz


def _record_download(folder: Path, entry: Entry, source: str, sha: str, size: int) -> Path:
    records = read_downloads(folder)
    records[entry.name] = {
        "name": entry.name, "file": entry.file, "url": source, "sha256": sha, "size": size,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    path = folder / DOWNLOADS
    with _temp_file(folder, DOWNLOADS) as tmp:
        tmp.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _commit(tmp, path)
    return path


# --------------------------------------------------------------------------- progress


def download_bar(label: str, total: int | None, stream: TextIO | None = None, tty: bool | None = None,
                 redraw: float = 0.1):
    """A download's bar (edge/progress.py, tqdm) on stderr: percentage, MB, rate.

    On a terminal it redraws one line; otherwise (journald, CI, a pipe) it prints a
    line about every 10 % (every 5 MB when the size is not known).
    """
    from edge.progress import progress_bar

    return progress_bar(total, label, fmt="{desc} {percentage:3.0f}%  {n:.1f}/{total:.1f} MB  {rate_fmt}",
                        fmt_unknown="{desc} {n:.1f} MB  {rate_fmt}", unit="MB", scale=1e-6, step=5 << 20,
                        stream=stream, tty=tty, redraw=redraw)


# --------------------------------------------------------------------------- writing files


@dataclass(frozen=True)
class Result:
    name: str
    path: str
    status: str  # installed | skipped | recorded (installed, sha256 not known upstream)
    sha256: str


@contextlib.contextmanager
def _temp_file(folder: Path, name: str, suffix: str = ".part"):
    """A temporary file in ``folder`` that is always gone afterwards, unless moved into place."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=suffix)
    except OSError as err:
        raise _write_error(folder, name, err) from None
    os.close(fd)
    path = Path(tmp)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _commit(tmp: Path, target: Path) -> None:
    """Move a finished temporary file into place, atomically and durably; readable by the service user."""
    commit(tmp, target, 0o644, durable=True)


def _write_error(folder: Path, name: str, err: OSError) -> EdgeError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return EdgeError(f"no space left in {folder} while writing {name}: free some space, "
                         f"or set {MODEL_DIR_ENV} to a folder on a bigger disk")
    if isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return EdgeError(f"cannot write to {folder}: run as a user that may write there, "
                         f"or set {MODEL_DIR_ENV} to a folder you own")
    return EdgeError(f"cannot write {name} in {folder}: {err.strerror or err}")


def _ensure_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(folder, folder.name, err) from None


def _copy(src: IO[bytes], dst: Path, folder: Path, progress=None) -> tuple[str, int]:
    """Stream ``src`` into ``dst`` (fsynced); returns (sha256, size).

    Write errors (disk full, read-only, permissions) become EdgeError; read
    errors from ``src`` are left to the caller, who knows what it was reading.
    """
    h = hashlib.sha256()
    size = 0
    try:
        out = open(dst, "wb")
    except OSError as err:
        raise _write_error(folder, dst.name, err) from None
    try:
        while chunk := src.read(CHUNK):
            try:
                out.write(chunk)
            except OSError as err:
                raise _write_error(folder, dst.name, err) from None
            h.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress.update(len(chunk))
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as err:
            raise _write_error(folder, dst.name, err) from None
    finally:
        with contextlib.suppress(OSError):  # a failed flush fails again here; already reported
            out.close()
    return h.hexdigest(), size


class _CutOff(Exception):
    """The connection failed while the body was being read."""


class _Reader:
    """An HTTP response whose read errors are told apart from write errors."""

    def __init__(self, resp) -> None:
        self.resp = resp

    def read(self, n: int) -> bytes:
        try:
            return self.resp.read(n)
        except Exception as err:  # OSError, http.client.IncompleteRead, ssl errors, ...
            raise _CutOff(err) from err


def _download(entry: Entry, dst: Path, folder: Path, progress: bool, timeout: float) -> tuple[str, int]:
    host = urllib.parse.urlsplit(entry.url).netloc or entry.url
    request = urllib.request.Request(entry.url, headers={"User-Agent": f"edge/{__version__}"})
    fix = "check the network connection and try again, or copy the files to a folder and use --from DIR"
    bar = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            big = total is None or total >= 1_000_000  # no bar for a label file
            bar = download_bar(f"{entry.name}:", total) if progress and big else None
            sha, size = _copy(_Reader(resp), dst, folder, bar)
            if total is not None and size != total:
                raise _CutOff(f"got {size} of {total} bytes")
        return sha, size
    except urllib.error.HTTPError as err:
        raise EdgeError(f"download of {entry.name} failed: HTTP {err.code} {err.reason} from {entry.url}: "
                        "the file may have moved upstream; try again later, or use --from DIR") from None
    except urllib.error.URLError as err:
        raise EdgeError(f"download of {entry.name} failed: cannot reach {host} ({err.reason}): {fix}") from None
    except (_CutOff, http.client.HTTPException, ConnectionError, TimeoutError) as err:
        raise EdgeError(f"download of {entry.name} from {host} was cut off ({err or type(err).__name__}): "
                        f"{fix}") from None
    finally:
        if bar is not None:
            bar.close()  # ends the progress line (tqdm: a no-op the second time)


def _extract(archive: Path, dst: Path, folder: Path, entry: Entry) -> tuple[str, int]:
    """Take ``1.tflite`` (and nothing else) out of a .tar.gz into ``dst``.

    Only that one member is read, as a stream, into a file whose name we chose:
    names in the archive are never used as paths, so ``../`` or absolute members
    and links cannot write anywhere. A plain .tflite served instead of an
    archive is accepted as it is.
    """
    with open(archive, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        with open(archive, "rb") as src:
            return _copy(src, dst, folder)
    try:
        with tarfile.open(archive, "r:*") as tar:
            seen = []
            for member in tar:
                if member.name in (ARCHIVE_MEMBER, f"./{ARCHIVE_MEMBER}"):
                    if not member.isfile():
                        raise EdgeError(f"download of {entry.name}: {ARCHIVE_MEMBER} in the archive is not a "
                                        "regular file: the upstream archive changed, report it")
                    src = tar.extractfile(member)
                    assert src is not None  # a regular file always has data
                    return _copy(src, dst, folder)
                logger.debug("ignoring archive member %r", member.name)
                seen.append(member.name)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:  # write errors are EdgeError already
        raise EdgeError(f"download of {entry.name} is not a valid {entry.archive} archive ({err}): "
                        "the download may be corrupt, try again") from None
    raise EdgeError(f"download of {entry.name} has no {ARCHIVE_MEMBER} (found {', '.join(seen[:5]) or 'nothing'}): "
                    "the upstream archive changed, report it")


def _size(n: int) -> str:
    if n >= 100_000:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.1f} kB" if n >= 1000 else f"{n} bytes"


def _say(out: TextIO | None, text: str) -> None:
    print(text, file=out if out is not None else sys.stdout, flush=True)


def _already(entry: Entry, target: Path, records: dict, out: TextIO | None) -> Result | None:
    """A Result when the installed file can stay; None when it must be (re)installed."""
    status, got, _ = _status(entry, target, records)
    if status == "ok":
        _say(out, f"{entry.name}: already installed, sha256 ok ({target})")
        return Result(entry.name, str(target), "skipped", got or "")
    if status == "recorded":
        _say(out, f"{entry.name}: already installed, sha256 as recorded at download ({target})")
        return Result(entry.name, str(target), "skipped", got or "")
    if status == "mismatch":
        _say(out, f"{entry.name}: installed file {target} does not match its sha256, replacing it")
    elif status == "unknown":
        _say(out, f"{entry.name}: installed file {target} has no known or recorded sha256, replacing it")
    return None


def _finish(entry: Entry, tmp: Path, target: Path, folder: Path, sha: str, size: int,
            source: str, out: TextIO | None) -> Result:
    """Check the sha256 of a finished temporary file, move it into place, record it if unknown."""
    if entry.sha256 and sha != entry.sha256:
        raise EdgeError(f"{entry.name}: sha256 mismatch for {entry.file} from {source}: expected {entry.sha256}, "
                        f"got {sha}; the download may be corrupt or the upstream file changed, nothing was installed")
    _commit(tmp, target)
    if entry.sha256:
        _say(out, f"{entry.name}: installed {target} ({_size(size)}, sha256 ok)")
        return Result(entry.name, str(target), "installed", sha)
    record = _record_download(folder, entry, source, sha, size)
    _say(out, f"{entry.name}: installed {target} ({_size(size)}); NOT verified against a known checksum: "
              f"sha256 recorded as {sha} in {record}; verify it against the upstream release")
    return Result(entry.name, str(target), "recorded", sha)


# --------------------------------------------------------------------------- fetch / install_from


def _to_install(entries, folder: Path, force: bool, out: TextIO | None, results: list) -> Iterator:
    """(entry, target) for each entry not already installed with the right sha256; the others go to results."""
    for entry in entries:
        target = folder / entry.file
        if not force and (done := _already(entry, target, read_downloads(folder), out)):
            results.append(done)
            continue
        yield entry, target


def fetch(names: Iterable[str], directory: str | os.PathLike[str] | None = None, progress: bool = True, *,
          manifest: Manifest | str | os.PathLike[str] | None = None, force: bool = False,
          out: TextIO | None = None, timeout: float = 60.0) -> list[Result]:
    """Download models (a0, a1, a2), ``labels`` or ``all`` into the model folder.

    A model brings its label file along. Files already installed with the right
    sha256 are skipped unless ``force``. Status lines go to ``out`` (stdout),
    the progress bar to stderr.
    """
    m = _manifest(manifest)
    folder = Path(directory) if directory is not None else model_dir()
    entries = m.expand(names)
    _ensure_dir(folder)
    results: list[Result] = []
    for entry, target in _to_install(entries, folder, force, out, results):
        logger.debug("fetching %s from %s", entry.name, entry.url)
        with contextlib.ExitStack() as temps:
            tmp = temps.enter_context(_temp_file(folder, entry.file))
            if entry.archive == "tar.gz":
                raw = temps.enter_context(_temp_file(folder, entry.file, ".download"))
                _download(entry, raw, folder, progress, timeout)
                sha, size = _extract(raw, tmp, folder, entry)
            else:
                sha, size = _download(entry, tmp, folder, progress, timeout)
            results.append(_finish(entry, tmp, target, folder, sha, size, entry.url, out))
    return results


def install_from(src_dir: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None,
                 names: Iterable[str] | None = None, *,
                 manifest: Manifest | str | os.PathLike[str] | None = None, force: bool = False,
                 out: TextIO | None = None) -> list[Result]:
    """Copy manifest files found in a local folder (matched by installed file name) into the model folder.

    With ``names`` (as for :func:`fetch`) each named file must be there; without,
    whatever manifest files the folder holds are copied. sha256 is checked and
    files are moved into place atomically, as for a download.
    """
    m = _manifest(manifest)
    src = Path(src_dir).expanduser()
    folder = Path(directory) if directory is not None else model_dir()
    if not src.is_dir():
        raise EdgeError(f"model source folder {src} does not exist: pass the folder holding the .tflite files")
    entries = m.expand(names) if names is not None else list(m.entries.values())
    missing = [e.file for e in entries if not (src / e.file).is_file()]
    if names is not None and missing:
        raise EdgeError(f"{', '.join(missing)} not found in {src}: put the files there, "
                        "or fetch without --from to download them")
    entries = [e for e in entries if e.file not in missing]
    if not entries:
        raise EdgeError(f"no model files from the manifest in {src} "
                        f"(looked for {', '.join(e.file for e in m.entries.values())})")
    _ensure_dir(folder)
    results: list[Result] = []
    for entry, target in _to_install(entries, folder, force, out, results):
        source = src / entry.file
        with _temp_file(folder, entry.file) as tmp:
            try:
                f = open(source, "rb")
            except OSError as err:
                raise EdgeError(f"cannot read {source}: {err.strerror or err}") from None
            with f:
                sha, size = _copy(f, tmp, folder)
            results.append(_finish(entry, tmp, target, folder, sha, size, source.resolve().as_uri(), out))
    if missing:
        _say(out, f"not in {src}, skipped: {', '.join(missing)}")
    return results
