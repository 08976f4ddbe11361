"""What one frame's inference produces: the immutable Prediction, its ranked labels, softmax and top-k.

A Prediction is built once, complete (latency included), and then published to
every sink: nobody changes it afterwards (the dataclass is frozen, its arrays
are read-only and its dicts are read-only views). Watch-rule events are not
carried in it: they travel in their own envelope, ``Sink.event(event, latest)``,
beside the predictions (see edge/sinks/base.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edge.capture.base import Frame
    from edge.smoothing import Event

def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits (a new float32 array; the input is left alone)."""
    z = np.subtract(logits, logits.max(), dtype=np.float32)  # a new array: max and difference as float32
    np.exp(z, out=z)
    z /= z.sum()
    return z


def top_k(probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first; ties go to the lower class index.

    The order is the stable sort on (-score, index), so the first ``j`` of
    ``top_k(p, k)`` are ``top_k(p, j)`` for every ``j <= k``: the top-1 never
    depends on how many labels a sink shows. It stays O(n): up to ``SCAN_K`` the k
    largest are picked by argmax scans (the first maximum is the lowest index);
    beyond, only the candidates (everything >= the k-th largest value) are sorted.
    """
    return np.array(_top_indices(probs, k), np.intp)


SCAN_K = 16  # up to this k, k argmax scans beat sorting (a sink shows 1 to 5 labels: ~4x faster per frame)


def _top_indices(probs: np.ndarray, k: int) -> list[int]:
    """:func:`top_k` as a list of ints (what :func:`ranked` needs, without building an array)."""
    n = probs.shape[-1]
    k = max(1, min(k, n))
    if k <= SCAN_K and k < n and probs.dtype.kind == "f":
        # argmax returns the first maximum, i.e. the lowest index among ties: the same order as the stable sort
        rest = probs.copy()
        picked = []
        for _ in range(k):
            i = int(rest.argmax())
            if not rest[i] > -np.inf:  # -inf or NaN left: the sort below defines their order
                break
            picked.append(i)
            rest[i] = -np.inf
        else:
            return picked
    if k == n:
        return np.argsort(-probs, kind="stable").tolist()
    kth = np.partition(probs, n - k)[n - k]
    idx = np.flatnonzero(probs >= kth)  # ascending index; includes every value tied with the k-th
    return idx[np.argsort(-probs[idx], kind="stable")][:k].tolist()


@dataclass(frozen=True)
class Scored:
    label: str
    score: float

    def as_dict(self) -> dict:
        return {"label": self.label, "score": round(float(self.score), 4)}


def ranked(labels: list[str], probs: np.ndarray, k: int) -> list[Scored]:
    """The k best labels of ``probs``, best first (ties: lower class index first)."""
    return [Scored(labels[i], float(probs[i])) for i in _top_indices(probs, k)]


def iso_wall(ts: float) -> str:
    """A wall-clock time (time.time()) as local ISO 8601 with milliseconds and the UTC offset."""
    return datetime.fromtimestamp(ts, timezone.utc).astimezone().isoformat(timespec="milliseconds")


@dataclass(frozen=True, eq=False)
class Prediction:
    """One model output, published by the inference thread to every sink. Immutable."""

    t: float  # source seconds (video time for files)
    wall: float  # time.time() when the prediction was made
    seq: int  # the frame's sequence number
    probs: np.ndarray
    top: Sequence[Scored]  # stored as a tuple
    smoothed: np.ndarray
    smoothed_top: Sequence[Scored]
    scores: Mapping[str, float] = field(default_factory=dict)  # watch rule -> score
    active: Mapping[str, Event] = field(default_factory=dict)  # events in progress (after this prediction)
    latency: Mapping[str, float] = field(default_factory=dict)  # stage -> seconds, measured before publishing
    frame: Frame | None = None  # the frame the model saw (full size, RGB)
    model_fps: float = 0.0
    drops: int = 0
    feature: np.ndarray | None = None  # the pooled head feature, when the engine provides it

    def __post_init__(self) -> None:
        for name in ("scores", "active", "latency"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        object.__setattr__(self, "top", tuple(self.top))
        object.__setattr__(self, "smoothed_top", tuple(self.smoothed_top))
        for name in ("probs", "smoothed", "feature"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and value.flags.writeable:
                value = value.view()  # the caller's own array stays writable; this view does not
                value.flags.writeable = False
                object.__setattr__(self, name, value)

    @property
    def wall_iso(self) -> str:
        return iso_wall(self.wall)


def event_wall(event: Event, latest: Prediction | None) -> float:
    """Wall-clock time of ``event``: read off the latest prediction's clock at the event's source time."""
    if latest is None:
        return time.time()
    return latest.wall - max(0.0, latest.t - event.t)


__all__ = ["Prediction", "Scored", "event_wall", "iso_wall", "ranked", "softmax", "top_k"]
