"""Smoothing and events: pure stages between the model and the sinks.

``Smoother`` turns the model's per-frame probability vectors into smoothed ones
(EMA, sliding-window mean, or pass-through). ``RuleTracker`` sums the smoothed
probabilities of each watch rule's labels into one score and runs a hysteresis
state machine per rule that emits ``Event`` start/end pairs.

Nothing here reads a clock, sleeps, logs per frame or starts a thread: time is
the ``t`` passed in (source seconds), so the same inputs always give the same
outputs and the tests are literal tables.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

from edge.choices import SmoothingMethod
from edge.config import SmoothingConfig, WatchRule
from edge.errors import EdgeError
from edge.labels import LabelIndex, did_you_mean

logger = logging.getLogger(__name__)

# Source timestamps are floats (0.2 * 3 == 0.6000000000000001), so time
# comparisons (min_duration, cooldown) accept being this many seconds short.
TIME_EPS = 1e-6


# --------------------------------------------------------------------------- smoothing


class Smoother:
    """Smooths a stream of probability vectors.

    - ``ema``: ``s = alpha * p + (1 - alpha) * s``; the first vector after
      construction or ``reset()`` is returned as is.
    - ``window``: the mean of the last ``window`` vectors (of the ones seen so
      far while fewer than ``window`` have arrived). A running sum keeps each
      update O(classes); the sum is recomputed exactly from the stored vectors
      every ``window * 50`` updates so float error cannot accumulate.
    - ``none``: the vector itself.

    State is float64 and ``update`` always returns a new float64 array, so a
    caller may keep or modify it freely. All vectors between two resets must
    have the same shape.

    The arguments are not checked again here: they are validated once, at the
    config boundary (:class:`~edge.config.SmoothingConfig`: method one of
    ``SmoothingMethod``, 0 < alpha <= 1, window >= 1).
    """

    def __init__(self, method: SmoothingMethod, alpha: float = 0.4, window: int = 5) -> None:
        self.method = method
        self.alpha = float(alpha)
        self.window = int(window)
        self._recompute_every = self.window * 50
        self._ema: np.ndarray | None = None
        self._recent: deque[np.ndarray] = deque()
        self._sum: np.ndarray | None = None
        self._since_recompute = 0

    @classmethod
    def from_config(cls, cfg: SmoothingConfig) -> Smoother:
        return cls(cfg.method, alpha=cfg.alpha, window=cfg.window)

    def reset(self) -> None:
        """Forget the history (after a camera gap or a model reset): the next update starts fresh."""
        self._ema = None
        self._recent.clear()
        self._sum = None
        self._since_recompute = 0

    def update(self, probs: np.ndarray) -> np.ndarray:
        p = np.array(probs, dtype=np.float64)  # always a copy
        if self.method == "none":
            return p
        if self.method == "ema":
            return self._update_ema(p)
        return self._update_window(p)

    def _check_shape(self, p: np.ndarray, state: np.ndarray) -> None:
        if p.shape != state.shape:
            raise ValueError(f"probability vector shape changed from {state.shape} to {p.shape}: call reset() first")

    def _update_ema(self, p: np.ndarray) -> np.ndarray:
        if self._ema is None:
            self._ema = p
        else:
            self._check_shape(p, self._ema)
            self._ema = self.alpha * p + (1.0 - self.alpha) * self._ema
        return self._ema.copy()

    def _update_window(self, p: np.ndarray) -> np.ndarray:
        if self._sum is None:
            self._sum = np.zeros_like(p)
        else:
            self._check_shape(p, self._sum)
        if len(self._recent) == self.window:
            self._sum -= self._recent.popleft()
        self._recent.append(p)
        self._since_recompute += 1
        if self._since_recompute >= self._recompute_every:
            self._sum = np.sum(np.stack(self._recent), axis=0)
            self._since_recompute = 0
        else:
            self._sum += p
        return self._sum / len(self._recent)


# --------------------------------------------------------------------------- events


Phase = Literal["start", "end"]


@dataclass
class Event:
    """One phase of a watch rule's event.

    ``t`` is when this phase happened and ``score`` the rule score then (source
    seconds). A "start" has ``duration`` 0 and ``peak`` = ``score``; an "end"
    has ``duration`` = ``t - start``, ``peak`` = the highest score from the
    start update to the end, and ``reason``: "score" (fell below exit),
    "stopped" or "reset" (or whatever ``RuleTracker.end_all`` was given).
    """

    rule: str
    phase: Phase
    t: float
    score: float
    start: float
    peak: float
    duration: float
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: times rounded to ms, scores to 4 decimals; the same keys for both phases."""
        d = asdict(self)
        for key in ("t", "start", "duration"):
            d[key] = round(float(d[key]), 3)
        for key in ("score", "peak"):
            d[key] = round(float(d[key]), 4)
        return d


class _RuleState:
    __slots__ = ("rule", "indices", "pending_since", "active", "peak", "last_score", "cooldown_until")

    def __init__(self, rule: WatchRule, indices: list[int]) -> None:
        self.rule = rule
        self.indices = np.asarray(indices, dtype=np.intp)
        self.pending_since: float | None = None
        self.active: Event | None = None  # the start event, as emitted
        self.peak = 0.0
        self.last_score = 0.0
        self.cooldown_until = float("-inf")

    def clear(self) -> None:
        self.pending_since = None
        self.active = None
        self.peak = 0.0
        self.last_score = 0.0
        self.cooldown_until = float("-inf")


def _label_indices(rule: WatchRule, index: LabelIndex) -> list[int]:
    indices: list[int] = []
    for wanted in rule.labels:
        i = index.find(wanted)
        if i is None:
            raise EdgeError(f"watch rule {rule.name!r}: label {wanted!r} is not a label of this model "
                            f"({_suggest(index.close(wanted))})")
        if i not in indices:  # 'Pancake' and 'pancake' in one rule count once
            indices.append(i)
    return indices


def _suggest(close: list[str]) -> str:
    return did_you_mean(close) or "check the spelling against the model's label file"


def _inactive(rule: WatchRule, index: LabelIndex, head: str) -> str | None:
    """Why ``rule`` cannot be scored while the head file ``head`` is missing (labels the model lacks), else None."""
    unknown = [label for label in rule.labels if index.find(label) is None]
    if not unknown:
        return None
    names = ", ".join(repr(label) for label in unknown)
    typo = "; ".join(f"{label!r}: {hint}" for label in unknown if (hint := did_you_mean(index.close(label))))
    return (f"watch rule {rule.name!r} is inactive: {names} {'is' if len(unknown) == 1 else 'are'} not among the "
            f"model's labels and the head file {head} (model.head, its learned classes) does not exist: teach "
            "them again (`edge learn add`) and reload, or fix the label if it is a typo"
            + (f" ({typo})" if typo else ""))


class RuleTracker:
    """Watch rules -> scores -> start/end events, by hysteresis.

    A rule's score is the sum of the smoothed probabilities of its labels
    (several Kinetics labels make one user category), clipped to 1.0. Labels
    match the model's exactly or, failing that, case-insensitively.

    Per rule, on each ``update(t, smoothed)``:

    - idle: a score >= ``enter`` makes the rule pending since that ``t``.
    - pending: the event STARTS at the first update where the score is still
      >= ``enter`` and ``t - pending_since >= min_duration`` (so with
      ``min_duration`` 0 it starts on the very update that reaches ``enter``).
      Any update with a score < ``enter`` (even one between ``exit`` and
      ``enter``) drops it back to idle and the timer starts again.
    - active: tracks the peak score; the event ENDS at the first update with a
      score < ``exit``. Scores between ``exit`` and ``enter`` keep it active.
    - cooldown: after an end at ``end_t`` the rule cannot start again until
      ``t >= end_t + cooldown``; updates before that do not even make it
      pending. The update that ends an event never starts one.

    Times are source seconds and must be non-decreasing (the daemon guarantees
    this); ``min_duration`` and cooldown comparisons allow ``TIME_EPS`` of float
    error so frames at 0.2 s steps start an event at exactly the expected frame.

    A label the model does not have is an EdgeError (a typo), except when
    ``missing_head`` names the configured head file (``model.head``) that is not
    there: its learned classes cannot be checked, so a rule with such labels is
    left out, inactive, and ``inactive`` maps its name to the warning saying why.
    """

    def __init__(self, rules: list[WatchRule], labels: list[str], missing_head: str | None = None) -> None:
        names = [rule.name for rule in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise EdgeError(f"watch: rule names must be unique, repeated: {', '.join(dupes)}")
        self.labels = list(labels)
        index = LabelIndex(self.labels)
        self.inactive: dict[str, str] = {}  # rule name -> why it is not scored (its learned labels' head is gone)
        if missing_head is not None:
            for rule in rules:
                why = _inactive(rule, index, missing_head)
                if why is not None:
                    self.inactive[rule.name] = why
        self._states = {rule.name: _RuleState(rule, _label_indices(rule, index)) for rule in rules
                        if rule.name not in self.inactive}

    @property
    def rules(self) -> list[WatchRule]:
        return [s.rule for s in self._states.values()]

    def _check(self, smoothed: np.ndarray) -> np.ndarray:
        vec = np.asarray(smoothed)
        if vec.shape != (len(self.labels),):
            raise ValueError(f"expected {len(self.labels)} class probabilities, got shape {vec.shape}")
        return vec

    def scores(self, smoothed: np.ndarray) -> dict[str, float]:
        """Per rule: the sum of its labels' probabilities, clipped to 1.0."""
        vec = self._check(smoothed)
        return {name: min(1.0, float(vec[s.indices].sum())) for name, s in self._states.items()}

    def update(self, t: float, smoothed: np.ndarray) -> list[Event]:
        """Feed one smoothed vector at source time ``t``; return the events it caused, in rule order."""
        t = float(t)
        events: list[Event] = []
        for name, score in self.scores(smoothed).items():
            state = self._states[name]
            rule = state.rule
            state.last_score = score
            if state.active is not None:
                state.peak = max(state.peak, score)
                if score < rule.exit:
                    events.append(self._end(state, t, score, "score"))
                continue
            if t < state.cooldown_until - TIME_EPS or score < rule.enter:
                state.pending_since = None
                continue
            if state.pending_since is None:
                state.pending_since = t
            if t - state.pending_since >= rule.min_duration - TIME_EPS:
                start = Event(rule=name, phase="start", t=t, score=score, start=t, peak=score, duration=0.0)
                state.active = start
                state.peak = score
                state.pending_since = None
                events.append(replace(start))
        return events

    def _end(self, state: _RuleState, t: float, score: float, reason: str) -> Event:
        start = state.active
        assert start is not None
        end = Event(rule=start.rule, phase="end", t=t, score=score, start=start.start,
                    peak=state.peak, duration=t - start.start, reason=reason)
        state.active = None
        state.pending_since = None
        state.cooldown_until = t + state.rule.cooldown
        return end

    def active(self) -> dict[str, Event]:
        """The events in progress: copies of their start events with ``peak`` so far."""
        return {name: replace(s.active, peak=s.peak) for name, s in self._states.items() if s.active is not None}

    def end_all(self, t: float, reason: str) -> list[Event]:
        """End every active event at ``t`` (shutdown: "stopped"; reload or model reset: "reset").

        Each end carries the rule's last score and starts its cooldown like any
        end. Pending timers of all rules are cleared too: a wait for
        ``min_duration`` does not carry across a reset.
        """
        t = float(t)
        events = [self._end(s, t, s.last_score, reason) for s in self._states.values() if s.active is not None]
        for s in self._states.values():
            s.pending_since = None
        return events

    def reset(self) -> None:
        """Forget pending, active and cooldown state without emitting anything."""
        for s in self._states.values():
            s.clear()
