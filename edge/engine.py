"""Engine: the configured model(s), state policy and labels as one object.

``classify``, the daemon, ``bench`` and ``eval`` all build their engine here,
so a file is classified exactly as the camera would be.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edge import models as model_store
from edge.config import ModelConfig
from edge.model import StreamModel, softmax, top_k
from edge.states import make_policy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scored:
    label: str
    score: float

    def as_dict(self) -> dict:
        return {"label": self.label, "score": round(float(self.score), 4)}


class Engine:
    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        path, labels = model_store.resolve(cfg.name, cfg.labels)
        self.model = StreamModel(path, labels, threads=cfg.threads, preprocess=cfg.preprocess)
        self.labels = self.model.labels
        self.fps = cfg.fps
        self.policy = make_policy(cfg.state_policy, self.model, cfg.cap_frames,
                                  max(2, round(cfg.window_seconds * cfg.fps)))
        logger.info("model %s (%dx%d, %d classes, %s), policy %s, %s", self.model.name, *self.model.input_size,
                    self.model.num_classes, self.model.image.dtype, self.policy.describe(), self.model.backend)

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def times(self):
        return self.model.times

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One RGB frame in, logits out (the policy decides which stream answers)."""
        return self.policy.step(frame)

    def reset(self) -> None:
        self.policy.reset()

    def top(self, probs: np.ndarray, k: int) -> list[Scored]:
        return [Scored(self.labels[i], float(probs[i])) for i in top_k(probs, k)]

    def describe(self) -> str:
        return f"{self.model.name} [{self.policy.describe()}]"


__all__ = ["Engine", "Scored", "softmax", "top_k"]
