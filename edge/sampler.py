"""Pick frames at the model's rate (5 fps) by their timestamps, not by count.

A 30 fps file or a 15 fps camera is subsampled to the frames nearest a 1/fps
grid; a source slower than the model passes every frame. Feeding every frame of
a 30 fps file instead visibly hurts accuracy, because the model was trained at 5.
"""

from __future__ import annotations


class FrameSampler:
    """``accept(t)`` says whether the frame captured at ``t`` seconds is fed to the model."""

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError("fps must be > 0")
        self.period = 1.0 / fps
        self._due: float | None = None
        self._last_t: float | None = None
        self._half_gap = 0.0  # half the source's frame interval: the tolerance of "nearest"

    def accept(self, t: float) -> bool:
        if self._last_t is not None and t > self._last_t:
            self._half_gap = min((t - self._last_t) / 2, self.period / 2)
        self._last_t = t
        if self._due is None or t < self._due - 2 * self.period:  # first frame, or time went backwards
            self._due = t + self.period
            return True
        if t + self._half_gap < self._due:
            return False
        self._due += self.period
        if self._due <= t:  # a gap in the source: re-anchor the grid instead of bursting
            self._due = t + self.period
        return True

    def reset(self) -> None:
        self._due = None
        self._last_t = None
        self._half_gap = 0.0
