"""The model manifest (edge/manifest.json): what `edge models fetch` can download, with sha256.

Validated by pydantic models (``_ManifestFile``); a mistake is one line naming the key
(``models.a0.sha256 must be 64 lower-case hex digits or null``).

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
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


class _Spec(BaseModel):
    """One entry of manifest.json as written (unknown keys such as ``_comment`` are ignored)."""

    model_config = ConfigDict(extra="ignore")
    url: str = Field(min_length=1)
    archive: str
    file: str = Field(min_length=1)
    sha256: str | None = None

    @field_validator("archive")
    @classmethod
    def _archive(cls, v: str) -> str:
        if v not in ARCHIVES:
            raise ValueError(f"must be one of {', '.join(ARCHIVES)}")
        return v

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        if Path(v).name != v or v in (".", "..") or v.startswith("."):
            raise ValueError(f"must be a plain file name, not {v!r}")
        return v

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is not None and not (len(v) == 64 and all(c in "0123456789abcdef" for c in v)):
            raise ValueError("must be 64 lower-case hex digits or null")
        return v


class _ModelSpec(_Spec):
    input_size: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]  # [height, width]
    labels: str | None = None  # the name of a label entry


class _ManifestFile(BaseModel):
    """manifest.json: models, label files and clips by name."""

    model_config = ConfigDict(extra="ignore")
    models: dict[str, _ModelSpec] = Field(default_factory=dict)
    labels: dict[str, _Spec] = Field(default_factory=dict)
    clips: dict[str, _Spec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> _ManifestFile:
        seen: set[str] = set()
        for section in (self.models, self.labels, self.clips):
            for name in section:
                if name in seen or name in ("all", "labels"):
                    raise ValueError(f"duplicate or reserved name {name!r}")
                seen.add(name)
        for name, spec in self.models.items():
            if spec.labels is not None and spec.labels not in self.labels:
                raise ValueError(f"models.{name}.labels names {spec.labels!r}, which is not in 'labels'")
        return self


def _error_line(err: ValidationError) -> str:
    """The first problem as ``models.a0.file must be ...`` (the key path, then what is wrong)."""
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    return f"{where} {msg}" if where else msg


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
    try:
        spec = _ManifestFile.model_validate(data)
    except ValidationError as err:
        raise EdgeError(f"model manifest {path}: {_error_line(err)}") from None
    entries: dict[str, Entry] = {}
    for name, m in spec.models.items():
        entries[name] = Entry(name, "model", m.url, m.archive, m.file, m.sha256, m.input_size, m.labels)
    for kind, section in (("labels", spec.labels), ("clip", spec.clips)):
        for name, e in section.items():
            entries[name] = Entry(name, kind, e.url, e.archive, e.file, e.sha256)
    return Manifest(entries, str(path))


def _manifest(manifest: Manifest | str | os.PathLike[str] | None) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else load_manifest(manifest)


