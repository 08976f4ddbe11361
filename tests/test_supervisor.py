"""The capture supervisor as a unit: stalls, time that never goes back, failures logged once (no sleeps:
the tests wait on the sources' own counters, log records and thread joins)."""

from __future__ import annotations

import logging
import threading

import pytest

from edge.capture.base import Frame, SourceError
from edge.capture.fake import FakeSource, solid_frame
from edge.capture.supervisor import CaptureStats, CaptureSupervisor
from edge.config import SourceConfig
from edge.ring import FrameRing

RED = (255, 0, 0)


class Closing(FakeSource):
    """A FakeSource whose close() can be waited for."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.closed = threading.Event()

    def close(self) -> None:
        super().close()
        self.closed.set()


def supervise(source, factory=None, on_source=None, **cfg):
    ring, stats, stopped = FrameRing(256), CaptureStats(), threading.Event()
    sup = CaptureSupervisor(ring, stats, stopped, factory=factory, on_source=on_source)
    sup.open(source)
    sup.start(source, SourceConfig(**{"reopen_min_seconds": 0.01, **cfg}))
    return sup, ring, stats


def frames(ts):
    return [(t, RED) for t in ts]


def test_a_blocked_read_is_a_stall_and_a_fresh_source_takes_over(on_log):
    stalled = on_log("no frame for")
    frozen = Closing(frames([0.0, 0.1]), realtime=True, at_end="block", name="cam")  # then blocks, as a frozen server
    fresh = FakeSource(frames([0.2, 0.3, 0.4]), realtime=True, at_end="block", name="cam")
    told = []
    sup, ring, stats = supervise(frozen, factory=lambda: fresh, on_source=told.append, stall_seconds=0.3)
    try:
        assert stalled.event.wait(10), "no stall reported"
        assert fresh.wait_reads(4), "the fresh source was not read"
        assert stats.stalls == 1 and "(stalled)" in stats.last_error
        assert told == [fresh] and sup.source is fresh and fresh.opens == 1
        assert [f.t for f in ring.since(0)][:2] == [0.0, 0.1] and len(ring) >= 4
        assert stats.source_state in ("ok", "reconnecting")  # reading again, never "ok" while stalled
        assert not frozen.closed.is_set()  # its read is still blocked: never closed under it
        frozen.abort()  # the blocked read returns at last: its own thread closes it
        assert frozen.closed.wait(10)
    finally:
        fresh.abort()
        sup.stop(timeout=5)


def test_without_a_factory_a_stall_is_reported_and_the_read_waited_for(on_log):
    stalled = on_log("waiting for the read to time out")
    src = FakeSource(frames([0.0]), realtime=True, at_end="block", name="cam")
    sup, ring, stats = supervise(src, stall_seconds=0.3)
    try:
        assert stalled.event.wait(10)
        assert stats.source_state == "stalled"
        src.abort()  # the source's own timeout: a SourceError, then the usual reopen
        assert src.wait_opens(2)
    finally:
        sup.stop(timeout=5)


class Restarting:
    """A source whose clock starts again at 0 at every open (as OpenCV stamps a stream)."""

    name, fps, can_freeze = "stream", 10.0, False

    def __init__(self, realtime: bool, plan) -> None:
        self.realtime = realtime
        self.plan = list(plan)
        self.kind = "rtsp" if realtime else "file"
        self.opened = threading.Event()

    def open(self) -> None:
        self.opened.set()

    def close(self) -> None:
        pass

    def read(self):
        if not self.plan:
            return None
        item = self.plan.pop(0)
        if isinstance(item, Exception):
            raise item
        return Frame(solid_frame(RED), item, 0)


@pytest.mark.parametrize("realtime", [True, False])
def test_t_never_goes_back_across_a_reopen(realtime):
    plan = [0.0, 0.1, 0.2, SourceError("gone"), 0.0, 0.1, SourceError("gone"), 0.0]
    sup, ring, _ = supervise(Restarting(realtime, plan))
    sup._thread.join(10)
    ts = [f.t for f in ring.since(0)]
    assert len(ts) == 6
    assert ts == sorted(ts) and len(set(ts)) == 6  # monotonic, and no two frames at one time
    steps = [b - a for a, b in zip(ts, ts[1:])]
    assert steps[0] == pytest.approx(0.1) and steps[3] == pytest.approx(0.1)  # the source's own spacing kept
    if not realtime:
        assert steps[2] == pytest.approx(0.1)  # a file goes on one frame later
    sup.stop(timeout=5)


def test_a_repeated_failure_is_logged_once(caplog):
    caplog.set_level(logging.WARNING, logger="edge.capture.supervisor")
    src = FakeSource(frames([0.0]))
    src.open_errors = [SourceError("no camera found, tried: picamera2 (none)")] * 4
    sup, ring, stats = supervise(src, reopen_max_seconds=0.02)
    sup._thread.join(10)
    lines = [r.getMessage() for r in caplog.records if "no camera found" in r.getMessage()]
    assert len(lines) == 1, lines
    assert src.opens == 5 and len(ring) == 1
    sup.stop(timeout=5)


def test_a_byte_budget_smaller_than_ring_seconds_is_said_once(caplog):
    import numpy as np

    caplog.set_level(logging.WARNING, logger="edge.capture.supervisor")
    big = np.zeros((480, 640, 3), np.uint8)  # 0.9 MB a frame
    src = FakeSource([(k / 10, big) for k in range(5)], fps=10)
    ring, stats, stopped = FrameRing(256, max_bytes=2 * big.nbytes), CaptureStats(), threading.Event()
    sup = CaptureSupervisor(ring, stats, stopped)
    sup.open(src)
    sup.start(src, SourceConfig(ring_seconds=4, ring_mb=1.8))
    sup._thread.join(10)
    lines = [r.getMessage() for r in caplog.records if "frame ring holds" in r.getMessage()]
    assert lines == ["the frame ring holds 2 frames of 640x480, 0.2 s at 10 fps, not source.ring_seconds (4 s): "
                     "raise source.ring_mb (2 MB) or lower source.width/height"]
    sup.stop(timeout=5)
