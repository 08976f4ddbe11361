"""A labelled set of videos: a CSV (``file,label``) or a folder of class folders.

Read by ``edge eval`` (accuracy) and ``edge learn add`` (the clips of new classes).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str  # as written in the dataset (CSV cell or folder name)
    name: str  # how the report names the video: its path relative to the dataset


# --------------------------------------------------------------------------- reading a dataset


def load_dataset(spec: str | os.PathLike[str]) -> list[Sample]:
    """The videos and labels of a CSV file or a folder of class folders."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise EdgeError(f"dataset {path} does not exist: pass a CSV (file,label) or a folder of class folders")
    if path.is_dir():
        samples = _from_folder(path)
        if not samples and (path / "labels.csv").is_file():
            samples = _from_csv(path / "labels.csv")
    else:
        samples = _from_csv(path)
    if not samples:
        raise EdgeError(f"dataset {path} has no videos: a CSV needs file,label rows; a folder needs class folders "
                        f"holding videos ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return samples


def _from_csv(path: Path) -> list[Sample]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise EdgeError(f"cannot read dataset {path}: {err}") from None
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    if "file" not in columns or "label" not in columns:
        raise EdgeError(f"dataset {path} needs a header with 'file' and 'label' columns "
                        f"(found: {', '.join(reader.fieldnames or []) or 'nothing'})")
    reader.fieldnames = columns
    samples = []
    for row in reader:
        file, label = (row.get("file") or "").strip(), (row.get("label") or "").strip()
        if not file and not label:
            continue  # a blank line
        if not file or not label:
            raise EdgeError(f"dataset {path} line {reader.line_num}: both 'file' and 'label' are needed")
        video = Path(file).expanduser()
        samples.append(Sample(video if video.is_absolute() else path.parent / video, label, file))
    return samples


def _from_folder(path: Path) -> list[Sample]:
    samples = []
    for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for video in sorted(folder.iterdir()):
            if video.is_file() and video.suffix.lower() in VIDEO_SUFFIXES:
                samples.append(Sample(video, folder.name, f"{folder.name}/{video.name}"))
    return samples


__all__ = ["Sample", "VIDEO_SUFFIXES", "load_dataset"]
