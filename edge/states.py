"""State policies: how the engine forgets the past, and the temporal ensemble.

A MoViNet stream export pools its head features in a running SUM since the
last reset. In the int8 export that SUM is an int8 tensor on a grid 25x
coarser than a frame's feature, so most of a new frame rounds away: the model
can neither follow a new scene nor forget an old one (see docs/engine.md).
The engine splits the model at that pool (:mod:`edge.split`) and pools the
exact float features itself:

- ``window`` (default): the mean of the last W features (W = window_seconds x
  fps), through the head. Until W frames have been seen since a reset, the mean
  of what there is.
- ``ema``: an exponential moving average of the features with a half-life in
  seconds (the mean of what there is until the EMA weight is the larger).
- ``cumulative``: never forget: the original model bit for bit (its own int8
  SUM / count through the head). The reference, and the only policy of a model
  that cannot be split.

The pooling classes (:class:`ExactWindow`, :class:`ExactEma`) are pure numpy,
allocation-free per frame. The temporal ensemble (MoViNet paper, section 3.4)
is a policy of policies: k models, model i fed frames i, i+k, ..., their latest
logits averaged; each member keeps its own window, counted in the frames it sees.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from edge.model import StreamModel

logger = logging.getLogger(__name__)

POLICIES = ("window", "ema", "cumulative")
RESUM_EVERY = 4  # the window recomputes its running sum from the ring every this many laps


class Policy(Protocol):
    name: str
    feature: np.ndarray | None  # the pooled feature the head scored in the last step (float32)

    def step(self, frame: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...

    def describe(self) -> str: ...


# --------------------------------------------------------------------------- pooling maths (pure)


class ExactWindow:
    """Mean of the last ``size`` vectors: a ring of float32 rows and a float64 running sum.

    ``push(x)`` returns the mean (float32, a buffer reused by the next push). The
    sum is recomputed from the ring every ``RESUM_EVERY`` laps, so rounding
    cannot creep however long it runs.
    """

    def __init__(self, size: int, dim: int) -> None:
        if size < 1:
            raise ValueError(f"window size must be at least 1, got {size}")
        self.size = int(size)
        self._ring = np.zeros((self.size, dim), np.float32)
        self._sum = np.zeros(dim, np.float64)
        self.mean = np.zeros(dim, np.float32)
        self.reset()

    def reset(self) -> None:
        self._ring[...] = 0
        self._sum[...] = 0
        self.count = 0  # vectors in the window (<= size)
        self._next = 0
        self._pushes = 0

    def push(self, x: np.ndarray) -> np.ndarray:
        slot = self._ring[self._next]
        if self.count == self.size:
            self._sum -= slot
        else:
            self.count += 1
        slot[...] = x
        self._sum += slot
        self._next = (self._next + 1) % self.size
        self._pushes += 1
        if self._pushes % (self.size * RESUM_EVERY) == 0:
            np.sum(self._ring, axis=0, dtype=np.float64, out=self._sum)
        np.divide(self._sum, self.count, out=self.mean, casting="same_kind")  # in float64, rounded once to float32
        return self.mean


class ExactEma:
    """Exponential moving average with a half-life of ``half_life`` pushes.

    The weight of the newest vector is ``max(alpha, 1/n)`` after n pushes, so the
    first pushes average what there is (no bias towards the zero start) until
    the EMA weight ``alpha = 1 - 2**(-1/half_life)`` takes over.
    """

    def __init__(self, half_life: float, dim: int) -> None:
        if half_life <= 0:
            raise ValueError(f"half-life must be positive, got {half_life}")
        self.half_life = float(half_life)
        self.alpha = 1.0 - 0.5 ** (1.0 / self.half_life)
        self._m = np.zeros(dim, np.float64)
        self._d = np.zeros(dim, np.float64)
        self.mean = np.zeros(dim, np.float32)
        self.reset()

    def reset(self) -> None:
        self._m[...] = 0
        self.count = 0

    def push(self, x: np.ndarray) -> np.ndarray:
        self.count += 1
        w = max(self.alpha, 1.0 / self.count)
        np.subtract(x, self._m, out=self._d)
        self._d *= w
        self._m += self._d
        self.mean[...] = self._m
        return self.mean


def window_means(features: np.ndarray, frames: int) -> np.ndarray:
    """The exact window means a ``window`` policy of ``frames`` feeds its head, one row per frame.

    ``features`` is [n, D] per-frame head features (:meth:`StreamModel.features`).
    """
    pool = ExactWindow(frames, features.shape[1])
    return np.stack([pool.push(f).copy() for f in features]) if len(features) else features.astype(np.float32)


# --------------------------------------------------------------------------- policies


class CumulativePolicy:
    """Never forget: the original model's own answer (its head pool looped as exported)."""

    name = "cumulative"

    def __init__(self, model: StreamModel) -> None:
        self.model = model
        if model.is_split:
            model.loop_head_pool = True
            self.feature = np.zeros(model.feature_size, np.float32)
        else:
            self.feature = None
        self.reset()

    def step(self, frame: np.ndarray) -> np.ndarray:
        model = self.model
        if self.feature is None:
            return model.advance(frame)
        model.advance(frame)
        return model.head(model.pool_mean(self.feature))

    def reset(self) -> None:
        self.model.reset()

    def describe(self) -> str:
        return "cumulative" if self.model.is_split else "cumulative (model not split)"


class PooledPolicy:
    """The backbone's per-frame features pooled exactly (window or EMA), then the head."""

    def __init__(self, model: StreamModel, pool: ExactWindow | ExactEma, name: str, text: str) -> None:
        if not model.is_split:
            raise ValueError(f"model {model.name} is not split ({model.split_reason})")
        self.model, self.pool, self.name, self._text = model, pool, name, text
        model.loop_head_pool = False
        self.feature = pool.mean
        self.reset()

    def step(self, frame: np.ndarray) -> np.ndarray:
        return self.model.head(self.pool.push(self.model.advance(frame)))

    def reset(self) -> None:
        self.model.reset()
        self.pool.reset()

    def describe(self) -> str:
        return self._text


def window_policy(model: StreamModel, frames: int) -> PooledPolicy:
    frames = max(1, int(frames))
    return PooledPolicy(model, ExactWindow(frames, model.feature_size), "window", f"window W={frames} frames")


def ema_policy(model: StreamModel, half_life_frames: float) -> PooledPolicy:
    return PooledPolicy(model, ExactEma(half_life_frames, model.feature_size), "ema",
                        f"ema half-life {half_life_frames:g} frames")


class EnsemblePolicy:
    """k member policies taking turns: frame j goes to member j mod k; the answer is the mean of
    every member's latest logits (members that have seen no frame yet are left out).

    Each member keeps its own state policy, so its window/half-life is counted in
    the frames *it* sees: the caller scales them by 1/k to keep the same seconds
    (see Engine). ``feature`` is the mean of the members' latest pooled features
    when they all have one of the same size, else None.
    """

    name = "ensemble"

    def __init__(self, members: list[Policy]) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = list(members)
        sizes = {None if m.feature is None else m.feature.size for m in self.members}
        self._pools = len(sizes) == 1 and None not in sizes
        self.feature = np.zeros(sizes.pop(), np.float32) if self._pools else None
        self.reset()

    def reset(self) -> None:
        for m in self.members:
            m.reset()
        self._latest: list[np.ndarray | None] = [None] * len(self.members)
        self._features = [np.zeros_like(self.feature) for _ in self.members] if self._pools else []
        self._turn = 0
        self.last = 0  # the member that took the last frame
        if self.feature is not None:
            self.feature[...] = 0

    def step(self, frame: np.ndarray) -> np.ndarray:
        i = self._turn
        member = self.members[i]
        self._latest[i] = member.step(frame)
        if self._pools:
            self._features[i][...] = member.feature
            seen = [f for f, x in zip(self._features, self._latest) if x is not None]
            np.mean(seen, axis=0, dtype=np.float32, out=self.feature)
        self.last = i
        self._turn = (i + 1) % len(self.members)
        seen = [x for x in self._latest if x is not None]
        return np.mean(seen, axis=0, dtype=np.float32) if len(seen) > 1 else seen[0].copy()

    def describe(self) -> str:
        k = len(self.members)
        return f"ensemble of {k}, each sees 1 frame in {k}: " + " + ".join(m.describe() for m in self.members)


def make_policy(name: str, model: StreamModel, window_frames: int, half_life_frames: float) -> Policy:
    """The named policy on ``model``; a model that is not split runs ``cumulative`` (logged once, with why)."""
    if name not in POLICIES:
        raise ValueError(f"unknown state policy {name!r} (known: {', '.join(POLICIES)})")
    if name == "cumulative":
        return CumulativePolicy(model)
    if not model.is_split:
        logger.warning("model %s: the %s policy needs the model split at its head pool (%s); using cumulative: "
                       "it averages every frame since the last reset, so it follows a new scene slowly",
                       model.name, name, model.split_reason)
        return CumulativePolicy(model)
    if name == "window":
        return window_policy(model, window_frames)
    return ema_policy(model, half_life_frames)
