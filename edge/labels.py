"""Label files, and finding a label a person typed among a model's labels.

Watch rules (config.yaml, ``edge check-config``) and ``edge eval`` datasets both
name model labels by hand; both match them the same way: exactly, else ignoring
case, with the close ones suggested for a typo.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from edge.errors import EdgeError


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """The label file's lines, stripped, trailing blank lines dropped (a blank line inside is a class)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EdgeError(f"label file {path} does not exist: pass --labels FILE (one class a line)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EdgeError(f"cannot read label file {path}: {err}") from None
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    return labels


class LabelIndex:
    """A model's labels, searchable by a name a person wrote."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = list(labels)
        self._exact = {label: i for i, label in enumerate(self.labels)}
        self._folded: dict[str, int] = {}
        for i, label in enumerate(self.labels):
            self._folded.setdefault(label.strip().casefold(), i)

    def find(self, name: str) -> int | None:
        """The index of ``name``: an exact match, else one ignoring case; None if there is none."""
        index = self._exact.get(name)
        return index if index is not None else self._folded.get(name.strip().casefold())

    def close(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` labels that look like ``name`` (for "did you mean ...?"), closest first."""
        matches = difflib.get_close_matches(name.strip().casefold(), list(self._folded), n=n, cutoff=0.6)
        return [self.labels[self._folded[m]] for m in matches]


def did_you_mean(close: list[str]) -> str:
    """``did you mean 'a'?`` / ``did you mean 'a', 'b' or 'c'?`` for the close matches, or "" when none."""
    names = [repr(c) for c in close]
    if not names:
        return ""
    if len(names) == 1:
        return f"did you mean {names[0]}?"
    return f"did you mean {', '.join(names[:-1])} or {names[-1]}?"
