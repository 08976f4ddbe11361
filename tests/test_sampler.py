"""FrameSampler: which capture timestamps are fed to a 5 fps model."""

from __future__ import annotations

import numpy as np
import pytest

from edge.sampler import FrameSampler

MODEL_FPS = 5
PERIOD = 1 / MODEL_FPS


def kept(sampler: FrameSampler, times) -> list[float]:
    return [t for t in times if sampler.accept(t)]


# kept timestamps (s) of a source at `fps` over 2 s, sampled at 5 fps: the frame nearest
# each 0.2 s grid point (24 fps does not divide evenly: 4.8 frames a period); a source
# slower than 5 fps passes every frame
SOURCES = [
    (30, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8]),
    (25, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8]),
    (24, [0.0, 0.2083, 0.4167, 0.5833, 0.7917, 1.0, 1.2083, 1.4167, 1.5833, 1.7917]),
    (15, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8]),
    (5, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8]),
    (3, [0.0, 0.3333, 0.6667, 1.0, 1.3333, 1.6667]),
]


@pytest.mark.parametrize("start", [0.0, 12345.678])  # a file's pts, or a monotonic clock
@pytest.mark.parametrize("fps, expected", SOURCES)
def test_regular_sources(fps, expected, start):
    times = [start + k / fps for k in range(2 * fps)]
    got = [t - start for t in kept(FrameSampler(MODEL_FPS), times)]
    assert got == pytest.approx(expected, abs=1e-3)


def jittered(fps: float, seconds: float, jitter: float, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    return (100.0 + np.arange(n) / fps + rng.uniform(-jitter, jitter, n)).tolist()


def test_jittered_15fps_gives_5fps_without_drift():
    times = jittered(15, 60, 0.005)
    got = kept(FrameSampler(MODEL_FPS), times)
    assert abs(len(got) - 300) <= 1
    # the k-th kept frame stays next to the k-th grid point: no drift over the minute
    grid = got[0] + PERIOD * np.arange(len(got))
    assert np.abs(np.array(got) - grid).max() <= 1 / 15 / 2 + 2 * 0.005 + 1e-9
    assert np.diff(got).min() >= PERIOD - 1 / 15 - 2 * 0.005


def test_jittered_5fps_source_passes_every_frame():
    times = jittered(5, 60, 0.005, seed=1)
    assert kept(FrameSampler(MODEL_FPS), times) == times


def test_gap_reanchors_without_a_burst():
    fps = 15
    before = [k / fps for k in range(30)]  # 0 .. 1.933 s
    after = [5.0 + k / fps for k in range(30)]  # a 3 s gap, then 2 s more
    got = kept(FrameSampler(MODEL_FPS), before + after)
    assert len(got) == 20
    assert got[10:] == pytest.approx([5.0 + 0.2 * k for k in range(10)], abs=1e-9)  # first frame after the gap kept
    assert np.diff(got).min() >= PERIOD - 1 / fps / 2 - 1e-9


def test_time_going_backwards_restarts():
    fps = 15
    one_pass = [k / fps for k in range(30)]
    got = kept(FrameSampler(MODEL_FPS), one_pass + one_pass)  # a looped file starts again at 0
    expected_pass = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8]
    assert got == pytest.approx(expected_pass + expected_pass, abs=1e-9)


def test_reset_accepts_the_next_frame():
    sampler = FrameSampler(MODEL_FPS)
    assert sampler.accept(10.0) is True
    assert sampler.accept(10.05) is False
    sampler.reset()
    assert sampler.accept(10.1) is True
    assert sampler.accept(10.15) is False


@pytest.mark.parametrize("fps", [0, -5])
def test_fps_must_be_positive(fps):
    with pytest.raises(ValueError, match="fps must be > 0"):
        FrameSampler(fps)
