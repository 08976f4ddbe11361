"""The ring is made before its source opens, so its frame-count bound starts as a guess (30 fps); at the
source's first frame the capture thread fits it to the real rate, and only a byte budget that really keeps
less than ring_seconds is warned about, once per frame size (not again for each replacement source)."""

from __future__ import annotations

import logging
import threading

import numpy as np

from edge.capture.fake import FakeSource
from edge.capture.supervisor import CaptureStats, CaptureSupervisor
from edge.config import SourceConfig
from edge.ring import FrameRing, frames_for

SMALL = np.zeros((120, 160, 3), np.uint8)  # 57 KB a frame: 4 s at 60 fps is 14 MB, well inside 48 MB
BIG = np.zeros((480, 640, 3), np.uint8)


def shortfalls(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "frame ring holds" in r.getMessage()]


def test_a_60_fps_source_gets_ring_seconds_of_frames_and_no_bogus_warning(caplog):
    caplog.set_level(logging.WARNING, logger="edge.capture.supervisor")
    cfg = SourceConfig(ring_seconds=4)
    ring = FrameRing(frames_for(cfg.ring_seconds, 30.0), max_bytes=int(cfg.ring_mb * 2**20), seconds=cfg.ring_seconds)
    assert ring.capacity == 121  # what the daemon makes before the source opens: 4 s at 30 fps
    src = FakeSource([(k / 60, SMALL) for k in range(6 * 60)], realtime=True, can_freeze=False, fps=60)
    sup = CaptureSupervisor(ring, CaptureStats(), threading.Event())
    sup.open(src)
    sup.start(src, cfg)
    sup._thread.join(10)
    assert not sup._thread.is_alive()
    assert ring.capacity == 241 and len(ring) == 241  # 4 s at 60 fps, by time
    assert ring.stats()["seconds"] == 4.0
    assert shortfalls(caplog) == []  # before: "holds 121 frames ... raise source.ring_mb (48 MB)", with 7 MB used
    sup.stop(timeout=5)


def test_the_shortfall_is_said_once_across_a_replacement_source_of_the_same_size(caplog, on_log):
    caplog.set_level(logging.WARNING, logger="edge.capture.supervisor")
    stalled = on_log("no frame for")
    frozen = FakeSource([(0.0, BIG), (0.1, BIG)], realtime=True, at_end="block", can_freeze=False, fps=10, name="cam")
    fresh = FakeSource([(0.2, BIG), (0.3, BIG), (0.4, BIG)], realtime=True, at_end="block", can_freeze=False,
                       fps=10, name="cam")
    ring = FrameRing(256, max_bytes=2 * BIG.nbytes)
    sup = CaptureSupervisor(ring, CaptureStats(), threading.Event(), factory=lambda: fresh)
    sup.open(frozen)
    sup.start(frozen, SourceConfig(ring_seconds=4, ring_mb=1.8, stall_seconds=0.3, reopen_min_seconds=0.01))
    try:
        assert stalled.event.wait(10), "no stall reported"
        assert fresh.wait_reads(4), "the replacement source was not read"
        assert len(shortfalls(caplog)) == 1, shortfalls(caplog)
    finally:
        frozen.abort()
        fresh.abort()
        sup.stop(timeout=5)


def test_fit_only_raises_the_bound():
    ring = FrameRing(10)
    ring.fit(4)
    assert ring.capacity == 10
    ring.fit(25)
    assert ring.capacity == 25
    assert frames_for(4, 10) == 41 and frames_for(0.1, 10) == 8  # at least 8: a safety net errs high
