"""The model manifest (edge/manifest.json): what `edge models fetch` can download, with sha256.

The manifest is package data beside the ``edge`` package: ``models/`` exists only
in a git checkout, so a venv installed elsewhere (``/opt/edge``) would not find
it there. ``EDGE_MANIFEST`` or a ``manifest=`` argument points at another one
(the tests use their own).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError

MANIFEST_ENV = "EDGE_MANIFEST"
ARCHIVES = ("tar.gz", "none")
SECTIONS = {"model": "models", "labels": "labels", "clip": "clips"}  # entry kind -> manifest section

_PACKAGE_MANIFEST = Path(__file__).resolve().parent.parent / "manifest.json"


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Entry:
    """One file the store knows how to fetch: a model or a label file."""

    name: str
    kind: str  # "model", "labels" or "clip" (the demo clip `edge run --demo` plays)
    url: str
    archive: str  # "tar.gz" (holding 1.tflite) or "none"
    file: str  # installed file name in the model folder
    sha256: str | None  # of the installed file; None = not known upstream
    input_size: tuple[int, int] | None = None  # models only
    labels: str | None = None  # models only: name of the label entry


@dataclass(frozen=True)
class Manifest:
    entries: dict[str, Entry]  # models first, then label files, in manifest order
    source: str

    @property
    def models(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.kind == "model"]

    @property
    def label_files(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.kind == "labels"]

    def get(self, name: str) -> Entry:
        try:
            return self.entries[name]
        except KeyError:
            raise EdgeError(f"unknown model {name!r}: choose from {', '.join(self.choices())}") from None

    def choices(self) -> list[str]:
        return [*(e.name for e in self.models), "labels", *(e.name for e in self.entries.values() if e.kind == "clip"),
                "all"]

    def expand(self, names: Iterable[str]) -> list[Entry]:
        """Entries for command-line names: ``all``, ``labels`` (every label file) or entry names.

        A model brings its label file along; the result has no duplicates and
        keeps manifest order.
        """
        wanted: set[str] = set()
        for name in names:
            if name == "all":
                wanted.update(self.entries)
            elif name == "labels":
                wanted.update(e.name for e in self.label_files)
            else:
                entry = self.get(name)
                wanted.add(entry.name)
                if entry.labels:
                    wanted.add(entry.labels)
        return [e for e in self.entries.values() if e.name in wanted]


def load_manifest(path: str | os.PathLike[str] | None = None) -> Manifest:
    """Read and check a manifest: ``path``, else ``$EDGE_MANIFEST``, else the packaged one."""
    path = Path(path or os.environ.get(MANIFEST_ENV) or _PACKAGE_MANIFEST)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeError(f"model manifest {path} does not exist: reinstall edge (./install.sh) "
                        f"or unset {MANIFEST_ENV}") from None
    except (OSError, ValueError) as err:
        raise EdgeError(f"cannot read model manifest {path}: {err}") from None
    entries: dict[str, Entry] = {}
    for kind, section in (("model", "models"), ("labels", "labels"), ("clip", "clips")):
        items = data.get(section, {}) if isinstance(data, dict) else None
        if not isinstance(items, dict):
            raise EdgeError(f"model manifest {path}: {section!r} must be an object of name -> entry")
        for name, raw in items.items():
            if name in entries or name in ("all", "labels"):
                raise EdgeError(f"model manifest {path}: duplicate or reserved name {name!r}")
            entries[name] = _entry(path, kind, name, raw)
    for entry in entries.values():
        if entry.labels is not None and entries.get(entry.labels, None) is None:
            raise EdgeError(f"model manifest {path}: models.{entry.name}.labels names {entry.labels!r}, "
                            "which is not in 'labels'")
    return Manifest(entries, str(path))


def _entry(path: Path, kind: str, name: str, raw: object) -> Entry:
    where = f"model manifest {path}: {SECTIONS[kind]}.{name}"
    if not isinstance(raw, dict):
        raise EdgeError(f"{where} must be an object")
    for key in ("url", "archive", "file"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise EdgeError(f"{where}.{key} must be a non-empty string")
    if raw["archive"] not in ARCHIVES:
        raise EdgeError(f"{where}.archive must be one of {', '.join(ARCHIVES)}")
    file = raw["file"]
    if Path(file).name != file or file in (".", "..") or file.startswith("."):
        raise EdgeError(f"{where}.file must be a plain file name, not {file!r}")
    sha = raw.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64
                                and all(c in "0123456789abcdef" for c in sha)):
        raise EdgeError(f"{where}.sha256 must be 64 lower-case hex digits or null")
    size = None
    if kind == "model":
        size = raw.get("input_size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise EdgeError(f"{where}.input_size must be [height, width]")
        size = (size[0], size[1])
    labels = raw.get("labels") if kind == "model" else None
    if labels is not None and not isinstance(labels, str):
        raise EdgeError(f"{where}.labels must be the name of a label entry")
    return Entry(name, kind, raw["url"], raw["archive"], file, sha, size, labels)


def _manifest(manifest: Manifest | str | os.PathLike[str] | None) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else load_manifest(manifest)


