"""State policies: how a stream model forgets the past, and the temporal ensemble.

The MoViNet head keeps a running SUM of its features and a frame count since
the last reset, so a model that is never reset averages over the whole run and
stops following the scene (measured: 20 s to change its top-1 after 26 s of one
action). A policy wraps one or more StreamModels and decides when and how they
forget:

- ``cumulative``: never forget (what the reference examples do; for comparison);
- ``capped``: when the head has pooled 2N frames, rescale its sum to N frames'
  worth, so it always averages over the last N to 2N frames, at no extra cost.
  (Rescaling after every frame, to exactly N, was measured to fail: the int8
  export requantizes the pool sum on a coarse grid (about 0.59 for A0) at every
  frame, so a sum scaled off the grid each frame accumulates rounding error and
  the top-1 decays to noise within a minute; see benchmarks/state_policies.py);
- ``windowed``: two streams, each reset every W frames, half a window apart;
  report the one with the longer history. Twice the compute.

The temporal ensemble (MoViNet paper, section 3.4) is a policy made of policies:
k stream models, each fed every k-th frame (model i sees frames i, i+k, ...),
their latest logits averaged. Each member runs at fps/k, so the ensemble costs
what one model at the full rate costs.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from edge.model import StreamModel

logger = logging.getLogger(__name__)

POLICIES = ("cumulative", "capped", "windowed")


class Policy(Protocol):
    name: str
    cost: float  # invokes per frame, relative to one model

    def step(self, frame: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


class CumulativePolicy:
    name = "cumulative"
    cost = 1.0

    def __init__(self, model: StreamModel) -> None:
        self.model = model

    def step(self, frame: np.ndarray) -> np.ndarray:
        return self.model.step(frame)

    def reset(self) -> None:
        self.model.reset()

    def describe(self) -> str:
        return "cumulative"


class CappedPolicy:
    name = "capped"
    cost = 1.0

    def __init__(self, model: StreamModel, cap_frames: int) -> None:
        if not model.has_head_pool:
            raise ValueError(f"model {model.name} has no float head pool state")
        self.model = model
        self.cap_frames = cap_frames

    def step(self, frame: np.ndarray) -> np.ndarray:
        logits = self.model.step(frame)
        if self.model.head_frame_count() >= 2 * self.cap_frames:
            self.model.cap_head(self.cap_frames)
        return logits

    def reset(self) -> None:
        self.model.reset()

    def describe(self) -> str:
        return f"capped N={self.cap_frames}..{2 * self.cap_frames}"


class WindowedPolicy:
    name = "windowed"
    cost = 2.0

    def __init__(self, model: StreamModel, window_frames: int, second: StreamModel | None = None) -> None:
        self.window = max(2, int(window_frames))
        self.models = (model, second if second is not None else model.clone())
        self.reset()

    def reset(self) -> None:
        for m in self.models:
            m.reset()
        # stream b starts half a window late, so one stream always has >= W/2 frames of history
        self._ages = [0, -(self.window // 2)]

    def step(self, frame: np.ndarray) -> np.ndarray:
        out = []
        for i, m in enumerate(self.models):
            if self._ages[i] >= self.window:
                m.reset()
                self._ages[i] = 0
            if self._ages[i] >= 0:
                out.append((self._ages[i], i, m.step(frame)))
            self._ages[i] += 1
        # the longest history wins; ties go to stream a
        return max(out, key=lambda x: (x[0], -x[1]))[2]

    def describe(self) -> str:
        return f"windowed W={self.window} frames"


class EnsemblePolicy:
    """k member policies taking turns: frame j goes to member j mod k; the answer is the mean of
    every member's latest logits (members that have seen no frame yet are left out).

    Each member keeps its own state policy (capped, windowed ...), so its
    ``cap_frames``/window are counted in the frames *it* sees: the caller scales
    them by 1/k to keep the same seconds (see Engine).
    """

    name = "ensemble"

    def __init__(self, members: list[Policy]) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = list(members)
        self.reset()

    @property
    def cost(self) -> float:
        """Invokes per frame relative to one model: 1.0 for capped/cumulative members (each runs every k-th frame)."""
        return sum(m.cost for m in self.members) / len(self.members)

    def reset(self) -> None:
        for m in self.members:
            m.reset()
        self._latest: list[np.ndarray | None] = [None] * len(self.members)
        self._turn = 0
        self.last = 0  # the member that took the last frame

    def step(self, frame: np.ndarray) -> np.ndarray:
        i = self._turn
        self._latest[i] = self.members[i].step(frame)
        self.last = i
        self._turn = (i + 1) % len(self.members)
        seen = [x for x in self._latest if x is not None]
        return np.mean(seen, axis=0, dtype=np.float32) if len(seen) > 1 else seen[0].copy()

    def describe(self) -> str:
        k = len(self.members)
        return f"ensemble of {k}, each sees 1 frame in {k}: " + " + ".join(m.describe() for m in self.members)


def make_policy(name: str, model: StreamModel, cap_frames: int, window_frames: int) -> Policy:
    if name == "cumulative":
        return CumulativePolicy(model)
    if name == "capped":
        if model.has_head_pool:
            return CappedPolicy(model, cap_frames)
        logger.warning("model %s has no head pool state (state_head_pool_buffer/frame_count): "
                       "using the windowed policy instead of capped", model.name)
        return WindowedPolicy(model, window_frames)
    if name == "windowed":
        return WindowedPolicy(model, window_frames)
    raise ValueError(f"unknown state policy {name!r} (known: {', '.join(POLICIES)})")
