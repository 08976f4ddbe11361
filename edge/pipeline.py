"""One frame in, one Prediction out: the per-frame step shared by `edge run`, bench, classify and eval.

    frame --> engine.step (preprocess, invoke, state policy) --> softmax --> smoother --> watch rules
          --> Prediction (immutable, latency included) + the events this frame caused

The daemon's inference thread, ``edge bench``, ``edge classify`` and ``edge
eval`` all call :meth:`Pipeline.step`, so a file is classified exactly as the
camera would be and a benchmark measures what the daemon runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge.prediction import Prediction, ranked, softmax
from edge.sampler import FrameSampler
from edge.smoothing import Event, RuleTracker, Smoother

if TYPE_CHECKING:
    from edge.capture.base import Frame
    from edge.config import Config, ModelConfig
    from edge.engine import Engine
    from edge.learn import LearnedLabels

logger = logging.getLogger(__name__)

STAGES = ("queue", "preprocess", "invoke", "state_copy", "head", "postprocess", "total")  # Prediction.latency keys


@dataclass
class Pipeline:
    """What the inference thread uses; swapped whole on reload."""

    engine: Engine
    smoother: Smoother
    tracker: RuleTracker
    sampler: FrameSampler
    top: int  # labels ranked per prediction: as many as the most any sink shows (status.json shows 3)
    learned: LearnedLabels | None = None  # model.head (edge learn): learned classes scored on the window feature

    @classmethod
    def build(cls, cfg: Config, engine: Engine | None = None) -> Pipeline:
        """The daemon's pipeline: the model, smoothing and watch rules of ``cfg``."""
        top = max([3] + [s.top for s in cfg.sinks if isinstance(getattr(s, "top", None), int)])
        return cls._make(cfg.model, engine, Smoother.from_config(cfg.smoothing), cfg.watch, top)

    @classmethod
    def for_model(cls, cfg: ModelConfig, engine: Engine | None = None, top: int = 5) -> Pipeline:
        """A file's pipeline (classify, eval): the raw probabilities, no smoothing, no watch rules."""
        return cls._make(cfg, engine, Smoother("none"), [], top)

    @classmethod
    def _make(cls, cfg: ModelConfig, engine: Engine | None, smoother: Smoother, watch: list, top: int) -> Pipeline:
        if engine is None:
            from edge.engine import Engine

            engine = Engine(cfg)
        from edge.learn import head_path, load_learned

        learned = load_learned(cfg, engine)
        labels = learned.labels if learned is not None else engine.labels
        # a configured head whose file is gone (load_learned warned): rules on its classes wait for it, inactive
        head = getattr(cfg, "head", None)
        gone = str(head_path(None, head)) if head and learned is None else None
        tracker = RuleTracker(watch, labels, missing_head=gone)
        for why in tracker.inactive.values():
            logger.warning("%s", why)
        return cls(engine=engine, smoother=smoother, tracker=tracker, sampler=FrameSampler(cfg.fps), top=top,
                   learned=learned)

    @property
    def labels(self) -> list[str]:
        """The labels of every prediction: the model's, with (or replaced by) the learned classes."""
        return self.learned.labels if self.learned is not None else self.engine.labels

    def step(self, frame: Frame, model_fps: float = 0.0, drops: int = 0) -> tuple[Prediction, list[Event]]:
        """Run the model on ``frame``: its Prediction (with every stage's latency) and the events it caused."""
        t0 = time.monotonic()
        logits = self.engine.step(frame.pixels)
        return self.predict(frame, logits, started=t0, model_fps=model_fps, drops=drops)

    def predict(self, frame: Frame, logits: np.ndarray, started: float | None = None, model_fps: float = 0.0,
                drops: int = 0) -> tuple[Prediction, list[Event]]:
        """The model's logits for ``frame`` -> probabilities, smoothing, rule events -> the Prediction sinks get.

        ``started`` is when the model step began (time.monotonic()); with it the
        Prediction carries the stage latencies, all measured before it is published.
        """
        t1 = time.monotonic()
        probs = softmax(logits)
        if self.learned is not None:
            probs = self.learned.apply(probs, self.engine.feature)
        smoothed = self.smoother.update(probs)
        events = self.tracker.update(frame.t, smoothed)
        labels = self.labels
        top = ranked(labels, probs, self.top)
        # smoothing "none" (the default) returns probs as float64: the same values, so the same ranking
        smoothed_top = top if self.smoother.method == "none" else ranked(labels, smoothed, self.top)
        scores, active = self.tracker.scores(smoothed), self.tracker.active()
        latency = {}
        if started is not None:
            t2 = time.monotonic()
            times = self.engine.times
            latency = {"queue": max(0.0, started - frame.mono) if frame.mono else 0.0,
                       "preprocess": times.preprocess, "invoke": times.invoke, "state_copy": times.state_copy,
                       "head": times.head, "postprocess": t2 - t1, "total": t2 - started}
        pred = Prediction(t=frame.t, wall=time.time(), seq=frame.seq, probs=probs, top=top, smoothed=smoothed,
                          smoothed_top=smoothed_top, scores=scores, active=active, latency=latency, frame=frame,
                          model_fps=model_fps, drops=drops, feature=_copy(self.engine.feature))
        return pred, events

    def reset(self) -> None:
        """Forget the model state, the smoothing history and the sampling grid (a gap in the frames)."""
        self.engine.reset()
        self.smoother.reset()
        self.sampler.reset()


def _copy(feature: np.ndarray | None) -> np.ndarray | None:
    """The engine overwrites its feature every step: a Prediction keeps its own."""
    return None if feature is None else feature.copy()


__all__ = ["Pipeline", "STAGES"]
