"""``edge bench``'s memory figures: sampled in use (free heap handed back first), a trend, Python's own objects.

Behaviour only: which samples are taken, what the trend of given numbers is,
that free heap memory is told apart from memory in use, and that the whole
per-frame path (engine, pipeline, log sink) keeps no Python object per frame.
No RSS threshold for the pipeline and no timing.
"""

from __future__ import annotations

import tracemalloc

import pytest

from edge import bench
from edge.config import ModelConfig

BLUE = (0, 0, 255)


@pytest.fixture
def tiny(tiny_model_path, tiny_labels_path) -> ModelConfig:
    return ModelConfig(name=str(tiny_model_path), labels=str(tiny_labels_path))


@pytest.fixture
def video(tmp_path, make_video):
    return make_video(tmp_path / "blue.mp4", BLUE, seconds=2.0)


def test_memory_is_sampled_evenly_from_growth_from_to_the_last_frame():
    points = sorted(bench.sample_points(10000, 1000))
    assert points[0] == 1 and points[1] == 1000 and points[-1] == 10000
    steps = {b - a for a, b in zip(points[1:-1], points[2:-1])}
    assert steps == {450}  # 9,000 frames in MEMORY_SAMPLES steps
    assert len(points) - 1 == bench.MEMORY_SAMPLES + 1  # the samples the trend is fitted through
    assert sorted(bench.sample_points(300, 300))[:2] == [1, 15]  # growth_from at the end: the whole run
    assert sorted(bench.sample_points(5, 1000)) == [1, 2, 3, 4, 5]


def test_the_trend_is_the_slope_per_10000_frames():
    assert bench.trend([1000, 2000, 3000, 4000], [60.0, 60.5, 61.0, 61.5]) == pytest.approx(5.0)
    assert bench.trend([1000, 2000, 3000], [60.0, 60.0, 60.0]) == pytest.approx(0.0)
    # one step of 2 MB early on is not a slope of 2 MB per 1,000 frames
    assert bench.trend(list(range(1000, 11000, 1000)), [60.0] + [62.0] * 9) < 1.5
    assert bench.trend([1000, 10000], [60.0, 70.0]) is None  # two samples are not a trend


@pytest.mark.skipif(bench.malloc_trim() is None, reason="no glibc malloc_trim here (musl, macOS)")
def test_free_memory_inside_the_heap_is_not_counted_as_in_use():
    # 100 kB blocks (under glibc's mmap threshold: they live in the heap), every other one kept, so freeing
    # the rest leaves 100 holes of 100 kB between kept blocks: glibc does not give those back on its own
    blocks = [bytearray(100_000) for _ in range(200)]
    pins = blocks[1::2]
    del blocks
    sample = bench.memory_sample()
    assert sample["free_heap"] >= 5.0  # of the ~10 MB freed
    assert sample["in_use"] <= sample["rss"]
    assert len(pins) == 100


def test_the_per_frame_path_keeps_no_python_object_per_frame(tiny, video):
    tracemalloc.start()
    try:
        r = bench.run_bench(tiny, video, frames=1500, growth_from=300)
    finally:
        tracemalloc.stop()
    assert r["memory_samples"] == bench.MEMORY_SAMPLES + 1
    # anything kept per frame over these 1,200 frames: a Prediction or event is 1,200 objects, and Python's
    # memory grows by 0.04 MB for a float kept in a list each frame (0.08 for a timestamp string, 0.15 for a
    # small dict: tried with a leak put into Pipeline.predict); without one it grew 0.014 to 0.019 MB here,
    # CPython's bounded free lists filling
    assert r["objects_growth"] < 30, r["objects_growth"]
    assert r["traced_growth_mb"] is not None and r["traced_growth_mb"] < 0.035, r["traced_growth_mb"]
    text = bench.format_bench(r)
    assert f"memory in use, frames 300..1500: {r['in_use_growth_mb']:+.2f} MB" in text
    assert "(tracemalloc)" in text


def test_without_malloc_trim_the_figure_says_it_counts_the_allocators_free_memory(tiny, video, monkeypatch):
    monkeypatch.setattr(bench, "malloc_trim", lambda: None)
    r = bench.run_bench(tiny, video, frames=40, growth_from=10)
    assert r["malloc_trim"] is False and r["free_heap_mb"] == 0 and r["traced_growth_mb"] is None
    assert "no glibc malloc_trim here, so freed memory the allocator keeps is counted" in bench.format_bench(r)
