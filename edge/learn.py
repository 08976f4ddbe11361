"""Learned classes: a few clips per class, scored on the stream model's pooled head feature.

A head file holds, for each class a user taught (``edge learn add`` / ``record``),
the window features of its examples and their mean. A frame's window feature is
answered by cosine nearest-class-mean: the class whose mean is most similar, or
``unknown`` when even that similarity is below the head's threshold. Fitting is
a mean (well under a millisecond); no training framework, numpy only.

The head file (``.head``) is an uncompressed ``.npz`` read with
``allow_pickle=False``, so opening one cannot run code. It holds:

- ``header``: UTF-8 JSON as uint8 bytes: ``format`` ("edge-head"), ``version``
  (1), ``feature_size`` (D), ``model`` and ``model_sha256`` (the stream model the
  features came from), ``classes`` (names, in score order), ``threshold``,
  ``temperature``, ``false_accept`` (the target rate the threshold was chosen
  for), ``threshold_source`` ("eval" or "default"), and ``examples``: one
  ``{class, recording, source, start, end}`` per embedding row;
- ``embeddings``: float32 [N, D], one window feature per example;
- ``means``: float32 [C, D], the unit-length mean of each class's unit-length
  examples, in ``classes`` order.

A *recording* is one sitting: one clip file given to ``add``, or one ``record``
session (its clips share the scene, the light and the person). Evaluation holds
out whole recordings, never segments of one, because segments of one recording
look alike and would make any classifier look good.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.atomic import commit, write_bytes_atomic
from edge.errors import EdgeError
from edge.labels import LabelIndex, did_you_mean
from edge.pidlock import LockHeld, PidLock

logger = logging.getLogger(__name__)

FORMAT = "edge-head"
VERSION = 1
UNKNOWN = "unknown"
DEFAULT_HEAD = "my-actions.head"
DEFAULT_THRESHOLD = 0.5  # cosine; used until there are recordings enough to choose one (see choose_threshold)
DEFAULT_TEMPERATURE = 0.05  # cosine units: a class 0.15 more similar than the next answer gets ~95% of the score
DEFAULT_FALSE_ACCEPT = 0.05
NOTHING_NAMES = ("nothing", "background", "idle", "empty", "none")
MIN_RECORDINGS = 2  # per class: fewer cannot be tested by holding a recording out; 3+ is better
MAX_NAME = 64


# --------------------------------------------------------------------------- the maths (pure, on arrays)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32); an all-zero row stays zero."""
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, np.float32(1e-12))).astype(np.float32)


def class_means(embeddings: np.ndarray, classes: np.ndarray, count: int) -> np.ndarray:
    """[count, D]: the unit-length mean of each class's unit-length rows (zero for a class without rows)."""
    return unit(_class_sums(unit(embeddings), classes, count))


def _class_sums(u: np.ndarray, classes: np.ndarray, count: int) -> np.ndarray:
    """[count, D] row sums per class (a loop over classes: no BLAS threads, steady on a busy Pi)."""
    classes = np.asarray(classes, np.intp)
    sums = np.zeros((count, u.shape[1]), np.float32)
    for c in np.unique(classes):
        sums[c] = u[classes == c].sum(axis=0)
    return sums


def cosine(features: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Cosine similarity of each feature (a row, or one vector) to each class mean (unit rows)."""
    return unit(features) @ means.T


def nearest(sims: np.ndarray, threshold: float) -> int:
    """The most similar class, or -1 (unknown) when its similarity is below ``threshold``."""
    if sims.size == 0:
        return -1
    best = int(np.argmax(sims))
    return best if sims[best] >= threshold else -1


def soft_scores(sims: np.ndarray, threshold: float, temperature: float) -> np.ndarray:
    """Scores in [0, 1] for each class plus ``unknown`` (last), summing to 1.

    A softmax over the similarities and the threshold (the unknown answer's
    similarity), divided by ``temperature``. A class scores 0.5 or more only
    when it is above the threshold and ahead of every other class, so a watch
    rule's ``enter: 0.5`` means "recognised".
    """
    z = np.append(np.asarray(sims, np.float64), threshold) / temperature
    z = np.exp(z - z.max())
    return (z / z.sum()).astype(np.float32)


def windows(features: np.ndarray, length: int) -> list[tuple[int, int]]:
    """Cut a clip's per-frame features into examples: (start, end) frame ranges of ``length``.

    A tail shorter than half a window is folded into the last window's example
    only if there is none (a clip shorter than one window is one example).
    """
    n = len(features)
    if n == 0:
        return []
    cuts = [(s, min(s + length, n)) for s in range(0, n, length)]
    if len(cuts) > 1 and cuts[-1][1] - cuts[-1][0] < (length + 1) // 2:
        cuts.pop()  # a short tail: too little of the action to stand for it
    return cuts


def choose_threshold(impostors: np.ndarray, rate: float) -> float | None:
    """The lowest similarity threshold at which at most ``rate`` of ``impostors`` are accepted.

    ``impostors``: how similar examples of a class the head did not know were
    to their best (wrong) class. None when there are none to learn from.
    """
    s = np.sort(np.asarray(impostors, np.float64))[::-1]
    if s.size == 0:
        return None
    allowed = int(math.floor(rate * s.size + 1e-9))
    if allowed >= s.size:
        return -1.0
    return float(np.nextafter(np.float32(s[allowed]), np.float32(2.0)))  # just above the first one refused


@dataclass(frozen=True)
class Trial:
    """One example answered by a head fitted without its recording."""

    truth: int  # class index
    answer: int  # nearest class over the classes left (no threshold); -1 when none is left
    best: float  # its similarity
    impostor: float  # best similarity among the *other* classes (NaN when there are none)
    testable: bool  # its class had examples from another recording


def leave_one_recording_out(embeddings: np.ndarray, classes: np.ndarray, recordings: np.ndarray,
                            count: int) -> list[Trial]:
    """Answer every example with class means fitted on every *other* recording."""
    u = unit(embeddings)
    classes = np.asarray(classes)
    recordings = np.asarray(recordings)
    total = _class_sums(u, classes, count)
    sizes = np.bincount(classes, minlength=count)
    trials: list[Trial] = []
    for rec in dict.fromkeys(recordings.tolist()):
        held = recordings == rec
        present = sizes - np.bincount(classes[held], minlength=count) > 0
        means = unit(total - _class_sums(u[held], classes[held], count))  # the sums without this recording
        for i in np.flatnonzero(held):
            sims = np.where(present, means @ u[i], -np.inf)
            truth = int(classes[i])
            others = np.delete(sims, truth)
            impostor = float(others.max()) if np.isfinite(others).any() else math.nan
            answer = int(np.argmax(sims)) if present.any() else -1
            trials.append(Trial(truth, answer, float(sims[answer]) if answer >= 0 else math.nan, impostor,
                                bool(present[truth])))
    return trials


# --------------------------------------------------------------------------- the head file


@dataclass(frozen=True)
class Example:
    cls: str
    recording: str  # one sitting: a clip file, or one `record` session
    source: str  # the clip it was cut from
    start: float  # seconds into the clip
    end: float


class Head:
    """Learned classes: examples, their embeddings and the class means, for one model."""

    def __init__(self, feature_size: int, model: str, model_sha256: str, *, classes: list[str] | None = None,
                 examples: list[Example] | None = None, embeddings: np.ndarray | None = None,
                 threshold: float = DEFAULT_THRESHOLD, temperature: float = DEFAULT_TEMPERATURE,
                 false_accept: float = DEFAULT_FALSE_ACCEPT, threshold_source: str = "default",
                 means: np.ndarray | None = None) -> None:
        self.feature_size = int(feature_size)
        self.model = model
        self.model_sha256 = model_sha256
        self.examples = list(examples or [])
        self.embeddings = (np.zeros((0, self.feature_size), np.float32) if embeddings is None
                           else np.asarray(embeddings, np.float32).reshape(-1, self.feature_size))
        self.classes = list(classes) if classes is not None else list(dict.fromkeys(e.cls for e in self.examples))
        self.threshold = float(threshold)
        self.temperature = float(temperature)
        self.false_accept = float(false_accept)
        self.threshold_source = threshold_source
        self.means = means if means is not None else self._fit_means()

    # ------------------------------------------------------------------ facts

    def class_index(self) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[e.cls] for e in self.examples], np.intp)

    def recording_index(self) -> np.ndarray:
        index: dict[str, int] = {}
        return np.array([index.setdefault(e.recording, len(index)) for e in self.examples], np.intp)

    def counts(self) -> list[tuple[str, int, list[str]]]:
        """(class, examples, its recordings) for each class."""
        out = []
        for c in self.classes:
            mine = [e for e in self.examples if e.cls == c]
            out.append((c, len(mine), list(dict.fromkeys(e.recording for e in mine))))
        return out

    def find(self, name: str) -> str | None:
        i = LabelIndex(self.classes).find(name)
        return None if i is None else self.classes[i]

    # ------------------------------------------------------------------ changing it

    def _fit_means(self) -> np.ndarray:
        return class_means(self.embeddings, self.class_index(), len(self.classes))

    def add(self, name: str, examples: list[Example], embeddings: np.ndarray) -> int:
        """Add examples to class ``name`` (made if new; an existing name matches ignoring case).

        An example already in the head (same clip, same start) is skipped. Returns how many were added.
        """
        name = check_name(name)
        name = self.find(name) or name
        embeddings = np.asarray(embeddings, np.float32).reshape(-1, self.feature_size)
        have = {(e.cls, e.source, round(e.start, 3)) for e in self.examples}
        keep = [i for i, e in enumerate(examples) if (name, e.source, round(e.start, 3)) not in have]
        if not keep:
            return 0
        if name not in self.classes:
            self.classes.append(name)
        self.examples += [Example(name, examples[i].recording, examples[i].source, examples[i].start, examples[i].end)
                          for i in keep]
        self.embeddings = np.concatenate([self.embeddings, embeddings[keep]])
        self.refit()
        return len(keep)

    def remove(self, name: str) -> str:
        """Drop a class and its examples; returns the name removed."""
        found = self.find(name)
        if found is None:
            hint = did_you_mean(LabelIndex(self.classes).close(name))
            hint = f" ({hint})" if hint else ""
            raise EdgeError(f"no class {name!r} in the head{hint}: `edge learn list` shows the classes")
        keep = [i for i, e in enumerate(self.examples) if e.cls != found]
        self.examples = [self.examples[i] for i in keep]
        self.embeddings = self.embeddings[keep]
        self.classes.remove(found)
        self.refit()
        return found

    def refit(self, false_accept: float | None = None) -> None:
        """Class means again, and the threshold for the false-accept target when recordings allow."""
        if false_accept is not None:
            self.false_accept = float(false_accept)
        self.means = self._fit_means()
        impostors = [t.impostor for t in self.trials() if not math.isnan(t.impostor)]
        chosen = choose_threshold(np.array(impostors), self.false_accept)
        if chosen is None:
            self.threshold, self.threshold_source = DEFAULT_THRESHOLD, "default"
        else:
            self.threshold, self.threshold_source = chosen, "eval"

    def trials(self) -> list[Trial]:
        if not self.examples:
            return []
        return leave_one_recording_out(self.embeddings, self.class_index(), self.recording_index(), len(self.classes))

    # ------------------------------------------------------------------ answering

    def similarities(self, feature: np.ndarray) -> np.ndarray:
        return cosine(np.asarray(feature, np.float32).reshape(-1), self.means)

    def scores(self, feature: np.ndarray) -> np.ndarray:
        """[C + 1] scores (classes, then unknown) for one window feature."""
        return soft_scores(self.similarities(feature), self.threshold, self.temperature)

    def answer(self, feature: np.ndarray) -> tuple[str, float]:
        """(class or "unknown", best similarity) for one window feature."""
        sims = self.similarities(feature)
        i = nearest(sims, self.threshold)
        return (self.classes[i] if i >= 0 else UNKNOWN), float(sims.max()) if sims.size else math.nan

    # ------------------------------------------------------------------ checks

    def check_model(self, model_sha256: str, feature_size: int, model_name: str, head_path: str | os.PathLike[str]) -> None:
        """EdgeError unless this head was learned on this model."""
        if feature_size != self.feature_size:
            raise EdgeError(f"head file {head_path} holds {self.feature_size}-d features but model {model_name} gives "
                            f"{feature_size}-d ones: learn the classes again with this model (`edge learn add`)")
        if model_sha256 != self.model_sha256:
            raise EdgeError(f"head file {head_path} was learned on model {self.model} (sha256 {self.model_sha256[:12]}...) "
                            f"but the model is {model_name} (sha256 {model_sha256[:12]}...): features differ between "
                            "models, so learn the classes again with this one, or use the model it was learned on")

    def warnings(self) -> list[str]:
        """Plain advice about how far the head can be trusted."""
        out = []
        recordings = {e.recording for e in self.examples}
        if self.examples and len(recordings) < MIN_RECORDINGS + 1:
            out.append(f"only {_n(len(recordings), 'recording')} in all: record each class on other days, in other light "
                       "and with other people, or it will only recognise the scene it was taught in")
        single = [(name, n, recs[0]) for name, n, recs in self.counts() if len(recs) < MIN_RECORDINGS]
        again = ("and will mostly recognise that scene again: add clips from other recordings (other days, light, "
                 "people)")
        if len(single) == 1:
            name, n, rec = single[0]
            out.append(f"class {name!r} comes from one recording ({rec}, {_n(n, 'example')}): it cannot be tested "
                       + again)
        elif single:
            out.append(f"classes {', '.join(repr(c) for c, _, _ in single)}: each comes from one recording: they "
                       "cannot be tested " + again)
        if self.classes and not any(c.casefold() in NOTHING_NAMES for c in self.classes):
            out.append("no 'nothing' class: teach what the scene looks like when nothing happens "
                       "(`edge learn record nothing`), or quiet moments are pushed into the nearest class")
        return out

    # ------------------------------------------------------------------ the file

    def header(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "feature_size": self.feature_size, "model": self.model,
                "model_sha256": self.model_sha256, "classes": self.classes, "threshold": self.threshold,
                "temperature": self.temperature, "false_accept": self.false_accept,
                "threshold_source": self.threshold_source,
                "examples": [{"class": e.cls, **{k: v for k, v in asdict(e).items() if k != "cls"}}
                             for e in self.examples]}

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        header = np.frombuffer(json.dumps(self.header(), indent=None).encode("utf-8"), np.uint8)
        np.savez(buf, header=header, embeddings=self.embeddings.astype(np.float32),
                 means=self.means.astype(np.float32))
        return buf.getvalue()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (the daemon, reloading, never reads half a file) and durably (fsynced: a power cut
        leaves the old head or the new one, never an empty file where weeks of examples were)."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, self.to_bytes(), durable=True)
        except OSError as err:
            raise EdgeError(f"cannot write head file {path}: {err.strerror or err}") from None
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Head:
        """Read and check a head file; every problem is one EdgeError naming the file."""
        path = Path(path)
        if not path.exists():
            raise EdgeError(f"head file {path} does not exist: teach a class first (`edge learn add NAME CLIP...`) "
                            "or fix model.head / --head")
        if path.is_dir():
            raise EdgeError(f"head file {path} is a folder: pass the .head file")
        bad = f"head file {path} is not a readable edge head file"
        fix = "it may be truncated or corrupt: learn the classes again (`edge learn add`)"
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("header", "embeddings", "means") if k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
            raise EdgeError(f"{bad} ({type(err).__name__}): {fix}") from None
        if "header" not in arrays:
            raise EdgeError(f"{bad} (no header): {fix}")
        try:
            header = json.loads(arrays["header"].tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise EdgeError(f"{bad} (its header is not JSON): {fix}") from None
        return cls._from_parts(path, header, arrays, f"{bad} ({{}}): {fix}")

    @classmethod
    def _from_parts(cls, path: Path, header: object, arrays: dict, bad: str) -> Head:
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise EdgeError(bad.format(f"format is not {FORMAT!r}"))
        version = header.get("version")
        if not isinstance(version, int) or version < 1:
            raise EdgeError(bad.format("no format version"))
        if version > VERSION:
            raise EdgeError(f"head file {path} has format version {version}, newer than this edge reads ({VERSION}): "
                            "upgrade edge")
        try:
            d = int(header["feature_size"])
            classes = [str(c) for c in header["classes"]]
            examples = [Example(str(e["class"]), str(e["recording"]), str(e["source"]), float(e["start"]),
                                float(e["end"])) for e in header["examples"]]
            emb, means = arrays["embeddings"], arrays["means"]
            problem = _bad_arrays(d, len(classes), len(examples), emb, means)
            if problem:
                raise EdgeError(bad.format(problem))
            head = cls(d, str(header["model"]), str(header["model_sha256"]), classes=classes, examples=examples,
                       embeddings=emb, threshold=float(header["threshold"]),
                       temperature=float(header["temperature"]), false_accept=float(header["false_accept"]),
                       threshold_source=str(header.get("threshold_source", "default")),
                       means=np.asarray(means, np.float32))
        except (KeyError, TypeError, ValueError) as err:
            raise EdgeError(bad.format(f"missing or wrong field: {err}")) from None
        problem = _inconsistent(head)
        if problem:
            raise EdgeError(bad.format(problem))
        return head


def _bad_arrays(d: int, c: int, n: int, emb: np.ndarray, means: np.ndarray) -> str | None:
    """What is wrong with a head file's arrays, given its header's sizes, or None."""
    if d < 1:
        return f"feature size {d}"
    if emb.dtype != np.float32 or emb.shape != (n, d):
        return f"embeddings are {emb.dtype} {list(emb.shape)}, expected float32 [{n}, {d}]"
    if means.dtype != np.float32 or means.shape != (c, d):
        return f"means are {means.dtype} {list(means.shape)}, expected float32 [{c}, {d}]"
    if not (np.isfinite(emb).all() and np.isfinite(means).all()):
        return "non-finite values"
    return None


def _inconsistent(head: Head) -> str | None:
    """What is wrong with a loaded head's header fields, or None."""
    c = len(head.classes)
    if len(set(head.classes)) != c or UNKNOWN in head.classes:
        return "repeated or reserved class names"
    if {e.cls for e in head.examples} != set(head.classes):
        return "examples and classes do not match"
    if not -1.0 <= head.threshold <= 1.0 or not head.temperature > 0 or not 0 <= head.false_accept < 1:
        return "threshold, temperature or false_accept out of range"
    return None


def check_name(name: str) -> str:
    """A class name a person typed, checked: one line of text, not ``unknown``."""
    clean = name.strip()
    if not clean:
        raise EdgeError("a class name cannot be empty")
    if len(clean) > MAX_NAME or any(ord(ch) < 32 for ch in clean):
        raise EdgeError(f"class name {name[:MAX_NAME]!r} must be one line of at most {MAX_NAME} characters")
    if clean.casefold() == UNKNOWN:
        raise EdgeError(f"{UNKNOWN!r} is the answer for what no class matches: pick another class name")
    return clean


@contextmanager
def head_lock(path: Path, wait: float = 0.0, then: str = "run this again") -> Iterator[None]:
    """While one `edge learn` reads, changes and writes the head file: no other (an exclusive flock on
    ``<head>.lock``, holding the PID; edge/pidlock.py). Another run holding it past ``wait`` seconds is
    an EdgeError naming its PID and what to do ``then``."""
    lock = PidLock(path.with_name(path.name + ".lock"))
    try:
        lock.acquire(wait)
    except LockHeld as held:
        raise EdgeError(f"head file {path} is being changed by another `edge learn` (pid {held.holder}): "
                        f"let it finish, then {then}") from None
    except OSError as err:
        raise EdgeError(f"cannot create the lock {lock.path} beside the head file: {err.strerror}") from None
    try:
        yield
    finally:
        lock.release()


def open_or_new(path: Path, feature_size: int, model: str, model_sha256: str) -> Head:
    """The head at ``path`` (checked against the model), or a new empty one."""
    if not path.exists():
        return Head(feature_size, model, model_sha256)
    head = Head.load(path)
    head.check_model(model_sha256, feature_size, model, path)
    return head


# --------------------------------------------------------------------------- evaluation


def evaluate(head: Head, false_accept: float | None = None) -> dict:
    """Leave-one-recording-out accuracy, the confusion table and the threshold for a false-accept rate."""
    rate = head.false_accept if false_accept is None else false_accept
    trials = head.trials()
    impostors = np.array([t.impostor for t in trials if not math.isnan(t.impostor)])
    chosen = choose_threshold(impostors, rate)
    threshold = chosen if chosen is not None else head.threshold
    tested = [t for t in trials if t.testable]
    c = len(head.classes)
    confusion = [[0] * (c + 1) for _ in range(c)]  # rows: truth; columns: classes, then unknown
    for t in tested:
        confusion[t.truth][t.answer if t.best >= threshold else c] += 1
    right = sum(confusion[i][i] for i in range(c))
    unknown = sum(row[c] for row in confusion)
    accepted = int((impostors >= threshold).sum())
    return {
        "classes": head.classes, "examples": len(head.examples),
        "recordings": len({e.recording for e in head.examples}),
        "tested": len(tested), "untested": len(trials) - len(tested),
        "nearest_correct": sum(t.answer == t.truth for t in tested),
        "correct": right, "unknown": unknown, "wrong": len(tested) - right - unknown,
        "threshold": threshold, "threshold_source": "eval" if chosen is not None else head.threshold_source,
        "false_accept_target": rate, "impostors": int(impostors.size), "false_accepts": accepted,
        "confusion": confusion, "warnings": head.warnings(),
    }


def _n(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"


def _pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.0f}% ({n}/{d})" if d else "-"


def format_eval(r: dict, name: str) -> str:
    lines = [f"{name}: {_n(len(r['classes']), 'class')}, {_n(r['examples'], 'example')} from "
             f"{_n(r['recordings'], 'recording')}"]
    if not r["tested"]:
        lines.append("nothing could be tested: every class needs examples from at least two recordings")
    else:
        n = r["tested"]
        lines.append(f"leave-one-recording-out, {n} examples tested ({r['untested']} of classes with one recording not):")
        lines.append(f"  nearest class (no threshold): {_pct(r['nearest_correct'], n)}")
        lines.append(f"  at threshold {r['threshold']:.3f}: right {_pct(r['correct'], n)}, "
                     f"unknown {_pct(r['unknown'], n)}, wrong {_pct(r['wrong'], n)}")
    if r["impostors"]:
        lines.append(f"  threshold {r['threshold']:.3f}: an action it was not taught is taken for a class "
                     f"{_pct(r['false_accepts'], r['impostors'])} of the time (target <= {100 * r['false_accept_target']:g}%)")
    else:
        lines.append(f"  threshold {r['threshold']:.3f} ({r['threshold_source']}): "
                     "two classes with recordings are needed to choose one")
    if r["tested"]:
        cols = r["classes"] + [UNKNOWN]
        width = max(len(c) for c in r["classes"] + ["true \\ answer"])
        cw = [max(5, len(c)) for c in cols]
        lines.append("confusion (rows: true class, columns: answer):")
        lines.append("  " + "true \\ answer".ljust(width) + "".join(f"  {c:>{w}}" for c, w in zip(cols, cw)))
        for cls, row in zip(r["classes"], r["confusion"]):
            lines.append("  " + cls.ljust(width) + "".join(f"  {v:>{w}}" for v, w in zip(row, cw)))
    lines += [f"warning: {w}" for w in r["warnings"]]
    return "\n".join(lines)


def format_list(head: Head, name: str) -> str:
    source = "chosen by leave-one-recording-out" if head.threshold_source == "eval" else "default"
    lines = [f"{name}: {_n(len(head.classes), 'class')}, model {head.model}, "
             f"threshold {head.threshold:.3f} ({source}, false accepts <= {100 * head.false_accept:g}%)"]
    if not head.classes:
        lines.append("  no classes yet: `edge learn add NAME CLIP...` or `edge learn record NAME`")
    for cls, n, recs in head.counts():
        lines.append(f"  {cls}: {_n(n, 'example')} from {_n(len(recs), 'recording')}: {', '.join(recs)}")
    lines += [f"warning: {w}" for w in head.warnings()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- in the pipeline


class LearnedLabels:
    """A head file's classes as ordinary labels of every prediction.

    ``add``: the model's own probabilities, then one score per learned class
    (the learned scores and ``unknown`` share 1, so they rank against the model's
    labels on the same scale). ``replace``: the learned classes and ``unknown``
    only. Scores come from each frame's window feature (``engine.feature``).
    """

    def __init__(self, head: Head, mode: str, model_labels: list[str], path: str | os.PathLike[str]) -> None:
        self.head, self.mode, self.path = head, mode, Path(path)
        if mode == "add":
            clash = LabelIndex(model_labels)
            same = [c for c in head.classes if clash.find(c) is not None]
            if same:
                raise EdgeError(f"head file {path}: learned class {same[0]!r} is also a label of the model, so a watch "
                                "rule could not tell them apart: set model.head_mode: replace, or remove the class "
                                "and add it again under another name")
            self.labels = list(model_labels) + head.classes
        elif mode == "replace":
            self.labels = head.classes + [UNKNOWN]
        else:
            raise EdgeError(f"model.head_mode must be add or replace, got {mode!r}")

    def apply(self, probs: np.ndarray, feature: np.ndarray | None) -> np.ndarray:
        """The prediction's scores over :attr:`labels`, from the model's probabilities and the window feature."""
        if feature is None:
            raise EdgeError("the engine gave no window feature, so learned classes cannot be scored")
        scores = self.head.scores(feature)
        return np.concatenate([probs, scores[:-1]]).astype(np.float32) if self.mode == "add" else scores

    def describe(self) -> str:
        return f"{len(self.head.classes)} learned classes from {self.path.name} ({self.mode})"


def missing_head(model_cfg) -> str | None:
    """Why the configured head (``model.head``) cannot be used because its file is not there, else None.

    A service that has run for months must not refuse to start for good because its learned-classes
    file vanished: it runs on the model's own classes and says so (this text), and `edge check-config`
    warns. A watch rule on a learned class is left out, inactive, with a warning (it cannot be scored
    until the head file is back; see edge.smoothing and status.json's ``inactive_rules``).
    """
    if not getattr(model_cfg, "head", None):
        return None
    path = head_path(None, model_cfg.head)
    if path.exists():
        return None
    return (f"model.head: head file {path} does not exist: running with the model's own classes only "
            "(teach the classes again with `edge learn add`, or remove model.head)")


def flag_head(text: str) -> Path:
    """A head file named on the command line (``--head``): the shell's path, and it must be there (a typo
    is an error; only a configured model.head that vanished is run without, see :func:`missing_head`)."""
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise EdgeError(f"--head: head file {path} does not exist: check the path, or teach a class first "
                        "(`edge learn add NAME CLIP... --head FILE`)")
    return path


def load_learned(model_cfg, engine) -> LearnedLabels | None:
    """The configured head (``model.head``) checked against the engine's model; None when none is configured,
    or when its file is missing (logged as a warning: see :func:`missing_head`)."""
    if not getattr(model_cfg, "head", None):
        return None
    missing = missing_head(model_cfg)
    if missing:
        logger.warning("%s", missing)
        return None
    from edge.models import sha256_file

    path = head_path(None, model_cfg.head)
    if len(getattr(engine, "members", ())) > 1:
        raise EdgeError("model.head cannot be used with model.ensemble: learned classes are scored on one model's "
                        "feature (and were learned on it): drop the ensemble, or the head")
    head = Head.load(path)
    model = engine.model
    if getattr(model, "feature_size", None) is None or not getattr(engine, "split", False):
        raise EdgeError(f"model.head: model {model.name} gives no window feature (it is not split at its head "
                        "pool), so learned classes cannot be scored: use a0, a1 or a2")
    head.check_model(sha256_file(model.path), model.feature_size, model.name, path)
    learned = LearnedLabels(head, model_cfg.head_mode, engine.labels, path)
    logger.info("learned classes: %s", learned.describe())
    return learned


# --------------------------------------------------------------------------- embedding clips


def window_frames(engine) -> int:
    """The engine's window in frames (``model.window_seconds`` at ``model.fps``): one example's length."""
    return max(1, round(engine.cfg.window_seconds * engine.fps))


def embed_clip(engine, path: str | os.PathLike[str], window: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A clip's examples: [k, D] window features and each window's (start, end) in seconds.

    The clip is read at the engine's rate (5 fps by timestamp) from a reset, as
    ``edge classify`` reads it; its per-frame head features are cut into windows
    of the engine's length (see :func:`windows`), each window's mean one example.
    """
    from edge.capture.opencv import OpenCVSource
    from edge.sampler import FrameSampler

    times: list[float] = []

    def frames():
        with OpenCVSource.file(str(path), paced=False) as src:
            for frame in src.sampled(FrameSampler(engine.fps).accept):
                times.append(frame.t)
                yield frame.pixels

    features = np.asarray(engine.clip_features(frames()), np.float32)
    if len(features) == 0:
        raise EdgeError(f"video file {path} has no decodable frames")
    cuts = windows(features, window)
    return (np.stack([features[s:e].mean(axis=0) for s, e in cuts]).astype(np.float32),
            [(round(times[s], 3), round(times[e - 1], 3)) for s, e in cuts])


def collect(name: str, clips: list[str]) -> list[tuple[str, list[Path]]]:
    """(class, clip files) to add: NAME with its CLIPs (a folder CLIP: the videos in it), or, with no CLIP,
    NAME is a dataset: a folder laid out ``class_name/clip.mp4`` (or a ``file,label`` CSV, as ``edge eval``)."""
    from edge.dataset import VIDEO_SUFFIXES, load_dataset

    if not clips:
        if not Path(name).expanduser().exists():
            raise EdgeError(f"no clips for class {name!r}: pass `edge learn add NAME CLIP...`, "
                            "or a folder laid out class_name/clip.mp4")
        groups: dict[str, list[Path]] = {}
        for sample in load_dataset(name):
            groups.setdefault(sample.label, []).append(sample.path)
        return list(groups.items())
    files: list[Path] = []
    for clip in clips:
        path = Path(clip).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise EdgeError(f"folder {path} has no videos ({', '.join(sorted(VIDEO_SUFFIXES))})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise EdgeError(f"video file {path} does not exist")
    return [(name, files)]


def add_clips(head: Head, engine, groups: list[tuple[str, list[Path]]], recording: str | None = None,
              say=print) -> int:
    """Embed every clip first (a bad one stops before the head changes), then add them. Returns examples added."""
    window = window_frames(engine)
    todo = []
    for name, files in groups:
        check_name(name)
        for path in files:
            emb, spans = embed_clip(engine, path, window)
            rec = recording or f"{path.parent.name}/{path.name}"
            todo.append((name, path, emb, [Example(name, rec, str(path.resolve()), a, b) for a, b in spans]))
    added = 0
    for name, path, emb, examples in todo:
        n = head.add(name, examples, emb)
        added += n
        spans = ", ".join(f"{e.start:.1f}-{e.end:.1f} s" for e in examples)
        say(f"{head.find(name)}: +{_n(n, 'example')} from {path.name} ({spans})" if n
            else f"{name}: {path.name} is already in the head, skipped")
    return added


# --------------------------------------------------------------------------- where things are


def head_path(explicit: str | None, configured: str | None = None) -> Path:
    """The head file: ``--head`` as given, else ``model.head`` (relative: in the models folder), else the default."""
    from edge.models import model_dir

    if explicit:
        return Path(explicit).expanduser()
    path = Path(configured or DEFAULT_HEAD).expanduser()
    return path if path.is_absolute() else model_dir() / path


def state_dir() -> Path:
    """Where recordings go: ``$STATE_DIRECTORY`` (the service's), else ``$XDG_STATE_HOME/edge`` (~/.local/state/edge)."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edge"


# --------------------------------------------------------------------------- recording from the camera


def record_clips(source, seconds: float, count: int, folder: Path, stem: str, *, countdown: int = 3,
                 say=print) -> list[Path]:
    """Record ``count`` clips of ``seconds`` from an open frame source into ``folder``.

    Before each clip a countdown runs on the source's own clock (frames keep
    being read, so the clip starts with a fresh frame, not a stale buffer).
    Each clip is written as ``<stem>-<n>.mp4`` with a JPEG of its middle frame
    beside it (``.jpg``: look at it to check what was recorded). A source that
    ends or fails part way keeps the clips already written and says so.
    """
    import cv2

    from edge.capture.base import SourceError

    folder.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def read():
        try:
            frame = source.read()
        except SourceError as err:
            raise _Stopped(f"the camera stopped ({err})") from None
        if frame is None:
            raise _Stopped("the source ended")
        return frame

    try:
        for n in range(1, count + 1):
            frame = read()
            for left in range(countdown, 0, -1):
                say(f"clip {n}/{count} in {left}...")
                until = frame.t + 1.0
                while frame.t < until:
                    frame = read()
            say(f"clip {n}/{count}: recording {seconds:g} s")
            frames = [frame]
            while frames[-1].t - frames[0].t < seconds:
                frames.append(read())
            span = max(frames[-1].t - frames[0].t, 1e-3)
            saved.append(_write_clip(cv2, folder / f"{stem}-{n}.mp4", frames, (len(frames) - 1) / span))
            say(f"clip {n}/{count}: saved {saved[-1]} ({len(frames)} frames; snapshot {saved[-1].with_suffix('.jpg')})")
    except _Stopped as err:
        say(f"{err} after {len(saved)} of {count} clips: keeping those")
    return saved


class _Stopped(Exception):
    pass


def _write_clip(cv2, path: Path, frames: list, fps: float) -> Path:
    """The frames as an MP4 with the clip sink's encoder (H.264 where it works, else mp4v), and the middle frame
    as a JPEG beside it. A file that cannot be written stops the recording (the clips before it are kept)."""
    from edge.sinks.encoders import choose, open_writer

    h, w = frames[0].pixels.shape[:2]
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    try:
        writer = open_writer(choose("auto", w, h), tmp, w, h, fps)
        try:
            for f in frames:
                writer.write(f.pixels, f.t)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        commit(tmp, path)  # fsynced: a recorded clip survives a power cut
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _Stopped(f"cannot write {path} ({err.strerror or err})") from None
    middle = frames[len(frames) // 2].pixels
    cv2.imwrite(str(path.with_suffix(".jpg")), cv2.cvtColor(middle, cv2.COLOR_RGB2BGR))
    return path


def service_pid(status: Path | None) -> int | None:
    """The pid of a running edge service, from its status file; None when none is running."""
    if status is None:
        return None
    try:
        pid = int(json.loads(status.read_text(encoding="utf-8"))["pid"])
        os.kill(pid, 0)
    except PermissionError:  # alive, but another user's (the service user)
        return pid
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid != os.getpid() else None
