"""The model store at run time: where models live, resolve a name to files, verify sha256s, list them.

Where the files go (:func:`model_dir`): ``EDGE_MODEL_DIR`` if set, else the
checkout's ``models/`` folder when running from a checkout, else
``/var/lib/edge/models``. Downloading is edge/models/fetch.py's job, imported
only by ``edge models fetch`` and install.sh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.errors import EdgeError
from edge.models.manifest import Entry, Manifest, _manifest

logger = logging.getLogger(__name__)

MODEL_DIR_ENV = "EDGE_MODEL_DIR"
SYSTEM_MODEL_DIR = Path("/var/lib/edge/models")
DEFAULT_MODEL = "a0"
DOWNLOADS = "downloads.json"  # what was fetched without a known sha256, in the model folder
CHUNK = 1 << 16


# --------------------------------------------------------------------------- where


def _checkout_models() -> Path | None:
    """``models/`` next to the ``edge`` package, when this is a source checkout."""
    root = Path(__file__).resolve().parents[2]
    # pyproject.toml tells a checkout from site-packages, which may hold some other `models`
    if (root / "pyproject.toml").is_file() and (root / "models").is_dir():
        return root / "models"
    return None


def model_dir() -> Path:
    """Where models are installed: ``$EDGE_MODEL_DIR``, the checkout's ``models/``, or /var/lib/edge/models."""
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return _checkout_models() or SYSTEM_MODEL_DIR


# --------------------------------------------------------------------------- resolve


def resolve(name_or_path: str | None, labels: str | None = None, *,
            manifest: Manifest | str | os.PathLike[str] | None = None,
            directory: str | os.PathLike[str] | None = None) -> tuple[Path, Path | None]:
    """The model file and its label file for a name (a0, a1, a2) or a path to a .tflite.

    For a custom path, labels are ``labels`` if given, else ``<stem>.txt`` next to
    the model, else ``labels.txt`` in its folder, else None (classes are then
    named ``class_0``...).
    """
    name = name_or_path or DEFAULT_MODEL
    m = _manifest(manifest)
    folder = Path(directory) if directory is not None else model_dir()
    entry = m.entries.get(name)
    if entry is None and not Path(name).expanduser().exists():
        entry = m.entries.get(name.lower())
    if entry is not None and entry.kind == "model":
        path = folder / entry.file
        if not path.is_file():
            raise EdgeError(f'model {entry.name} is not installed in {folder}: run "edge models fetch {entry.name}"')
        if labels is not None:
            return path, _explicit_labels(labels)
        if entry.labels is None:
            return path, None
        label_entry = m.entries[entry.labels]
        label_path = folder / label_entry.file
        if not label_path.is_file():
            raise EdgeError(f"label file {label_entry.file} for model {entry.name} is not installed in {folder}: "
                            'run "edge models fetch labels"')
        return path, label_path

    path = Path(name).expanduser()
    if not path.exists():
        known = ", ".join(e.name for e in m.models)
        raise EdgeError(f"model {name} is neither {known} nor an existing file: "
                        "pass a model name or the path to a stream .tflite")
    if path.is_dir():
        raise EdgeError(f"model {name} is a folder: pass the path to the .tflite file in it")
    if labels is not None:
        return path, _explicit_labels(labels)
    for candidate in (path.with_suffix(".txt"), path.with_name("labels.txt")):
        if candidate.is_file():
            logger.debug("labels for %s: %s", path, candidate)
            return path, candidate
    return path, None


def _explicit_labels(labels: str) -> Path:
    path = Path(labels).expanduser()
    if not path.is_file():
        raise EdgeError(f"label file {labels} does not exist: pass --labels FILE (one class a line)")
    return path


# --------------------------------------------------------------------------- status


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Row:
    """One manifest entry as installed (or not) in a model folder."""

    name: str
    kind: str
    file: str
    path: str
    input_size: tuple[int, int] | None
    installed: bool
    status: str  # ok | mismatch | recorded | unknown | missing
    sha256: str | None  # of the installed file
    expected: str | None  # from the manifest, or the one recorded at download when the manifest has none
    labels: str | None = None  # models: the name of their label entry

    def as_dict(self) -> dict:
        return asdict(self)


STATUS_TEXT = {
    "ok": "sha256 ok",
    "mismatch": "sha256 MISMATCH",
    "recorded": "sha256 as recorded at download (no known checksum)",
    "unknown": "sha256 unknown (no known checksum, none recorded)",
    "missing": "not installed",
}


def _status(entry: Entry, path: Path, records: dict) -> tuple[str, str | None, str | None]:
    """(status, actual sha256, expected sha256) of one installed file."""
    if not path.is_file():
        return "missing", None, entry.sha256
    got = sha256_file(path)
    if entry.sha256:
        return ("ok" if got == entry.sha256 else "mismatch"), got, entry.sha256
    recorded = (records.get(entry.name) or {}).get("sha256")
    if recorded is None:
        return "unknown", got, None
    return ("recorded" if got == recorded else "mismatch"), got, recorded


def verify(directory: str | os.PathLike[str] | None = None, *,
           manifest: Manifest | str | os.PathLike[str] | None = None) -> list[Row]:
    """Every manifest entry: installed or not, and whether its sha256 checks out."""
    m = _manifest(manifest)
    folder = Path(directory) if directory is not None else model_dir()
    records = read_downloads(folder)
    rows = []
    for entry in m.entries.values():
        path = folder / entry.file
        status, got, expected = _status(entry, path, records)
        rows.append(Row(entry.name, entry.kind, entry.file, str(path), entry.input_size,
                        status != "missing", status, got, expected, entry.labels))
    return rows


def list_models(directory: str | os.PathLike[str] | None = None, *,
                manifest: Manifest | str | os.PathLike[str] | None = None) -> list[Row]:
    """Rows for ``edge models list``: name, input size, installed, sha256 status (same rows as verify)."""
    return verify(directory, manifest=manifest)


def _split_text(row: Row) -> str:
    """``; splits at its head pool ...`` for an installed model (edge/split.py), else nothing."""
    if row.kind != "model" or not row.installed or row.status == "mismatch":
        return ""
    from edge.split import describe_file

    found = describe_file(row.path)
    return "" if found is None else f"; {found[1]}"


def format_rows(rows: list[Row], directory: str | os.PathLike[str]) -> str:
    """The table ``edge models list`` and ``edge models verify`` print."""
    lines = [f"{'name':<12} {'input':<8} {'installed':<9}  {'file':<30} sha256"]
    for r in rows:
        size = f"{r.input_size[0]}x{r.input_size[1]}" if r.input_size else "-"
        lines.append(f"{r.name:<12} {size:<8} {'yes' if r.installed else 'no':<9}  {r.file:<30} "
                     f"{STATUS_TEXT[r.status] if r.installed else '-'}{_split_text(r)}")
    lines.append(f"model folder: {directory}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- downloads.json


def read_downloads(directory: str | os.PathLike[str]) -> dict:
    """name -> {name, file, url, sha256, size, date} for files fetched without a known sha256."""
    path = Path(directory) / DOWNLOADS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        logger.warning("ignoring %s: %s", path, err)
        return {}
    return data if isinstance(data, dict) else {}


