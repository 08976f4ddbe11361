"""Engine: the configured model(s), state policy and labels as one object.

``classify``, the daemon, ``bench`` and ``eval`` all build their engine here,
so a file is classified exactly as the camera would be.
"""

from __future__ import annotations

import logging

import numpy as np

from edge import models as model_store
from edge.config import ModelConfig
from edge.errors import EdgeError
from edge.model import StreamModel
from edge.prediction import Scored, softmax, top_k
from edge.states import EnsemblePolicy, make_policy

logger = logging.getLogger(__name__)


class Engine:
    """One model, or a temporal ensemble when ``cfg.ensemble`` names two or more.

    After each ``step`` the answer's pooled feature is ``engine.feature`` (float32,
    the exact window/EMA mean the head scored; None for a model that is not split).
    Ensemble: member i sees frames i, i+k, i+2k ... so each member runs at fps/k.
    A member's window and half-life are counted in the frames it sees, so they
    are divided by k here: each member still pools the same seconds (a 5 s window
    at 5 fps is 25 frames; two members: 12 frames each at 2.5 fps, about the same
    5 s). The members' logits are averaged before the softmax.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.fps = cfg.fps
        names = list(cfg.ensemble) if len(cfg.ensemble) >= 2 else [cfg.name]
        k = len(names)
        self.members = [self._open(name, cfg, k > 1) for name in names]
        check_members(self.members, names)
        self.model = self.members[0]
        self.labels = self.model.labels
        window = max(1, round(cfg.window_seconds * cfg.fps / k))
        half_life = cfg.half_life_seconds * cfg.fps / k
        policies = [make_policy(cfg.state_policy, m, window, half_life) for m in self.members]
        self.ensemble = EnsemblePolicy(policies) if k > 1 else None
        self.policy = self.ensemble or policies[0]
        logger.info("model %s (%dx%d, %d classes, %s), policy %s, %s", self.describe_models(), *self.model.input_size,
                    self.model.num_classes, self.model.image.dtype, self.policy.describe(), self.model.backend)

    @staticmethod
    def _open(name: str, cfg: ModelConfig, member: bool) -> StreamModel:
        try:
            path, labels = model_store.resolve(name, cfg.labels)
            return StreamModel(path, labels, threads=cfg.threads, preprocess=cfg.preprocess)
        except EdgeError as err:
            if member:
                raise EdgeError(f"ensemble member {name}: {err}") from None
            raise

    @property
    def times(self):
        """Stage times of the last step (an ensemble: of the member that took the last frame)."""
        if self.ensemble is not None:
            return self.members[self.ensemble.last].times
        return self.model.times

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One RGB frame in, logits out (a new float32 array); ``feature`` then holds what the head scored."""
        return self.policy.step(frame)

    @property
    def feature(self) -> np.ndarray | None:
        """The pooled feature (float32) the head scored in the last step, overwritten by the next; None if not split."""
        return self.policy.feature

    def clip_features(self, frames) -> np.ndarray:
        """Per-frame head features of a clip (RGB uint8 frames) from a reset, float32 [n, D].

        The first model's (an ensemble's members share their classes, not their
        features). :func:`edge.states.window_means` turns them into the window
        means this engine would score. Resets the engine before and after.
        """
        self.reset()
        try:
            return self.model.features(frames)
        finally:
            self.reset()

    @property
    def split(self) -> bool:
        """Every model is split at its head pool (window/ema really run)."""
        return all(m.is_split for m in self.members)

    def reset(self) -> None:
        self.policy.reset()

    def top(self, probs: np.ndarray, k: int) -> list[Scored]:
        return [Scored(self.labels[i], float(probs[i])) for i in top_k(probs, k)]

    def describe_models(self) -> str:
        if self.ensemble is None:
            return self.model.name
        return f"ensemble of {' + '.join(m.name for m in self.members)}"

    def describe(self) -> str:
        if self.ensemble is None:
            return f"{self.model.name} [{self.policy.describe()}]"
        k = len(self.members)
        kinds = [m.describe() for m in self.ensemble.members]
        each = f"{kinds[0]} per member" if len(set(kinds)) == 1 else " / ".join(kinds)
        return f"{self.describe_models()} [each sees 1 frame in {k}, logits averaged; {each}]"


def check_members(models: list, names: list[str]) -> None:
    """Ensemble members must answer in the same classes, in the same order (EdgeError otherwise)."""
    first, first_name = models[0], names[0]
    for model, name in zip(models[1:], names[1:]):
        if model.num_classes != first.num_classes:
            raise EdgeError(f"ensemble members must have the same classes: {first_name} ({first.name}) has "
                            f"{first.num_classes}, {name} ({model.name}) has {model.num_classes}: "
                            "ensemble models trained on the same label set")
        diff = next((i for i, (a, b) in enumerate(zip(first.labels, model.labels)) if a != b), None)
        if diff is not None:
            raise EdgeError(f"ensemble members have different labels: class {diff} is {first.labels[diff]!r} in "
                            f"{first_name} but {model.labels[diff]!r} in {name}: use models trained on the same "
                            "label set, or pass one label file for all with --labels (model.labels)")


__all__ = ["Engine", "Scored", "check_members", "softmax", "top_k"]
