"""The shipped FakeSource, the source factory and the capture supervisor (numbering, end, failure, freeze)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge.capture import open_source
from edge.capture.base import Frame, SourceError
from edge.capture.fake import FakeSource, solid_frame
from edge.capture.supervisor import (HEALTH_LIMIT_SECONDS, CaptureStats, CaptureSupervisor, health_limit,
                                     read_timeout)
from edge.config import SourceConfig
from edge.errors import EdgeError
from edge.ring import FrameRing

RED, BLUE = (255, 0, 0), (0, 0, 255)


# --------------------------------------------------------------------------- FakeSource


def test_fake_source_plays_colours_arrays_errors_and_the_end():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    src = FakeSource([(0.0, RED), (0.5, pixels), SourceError("gone"), (1.0, BLUE), None], size=4)
    src.open()
    a = src.read()
    assert (a.t, a.seq, a.pixels.shape) == (0.0, 1, (4, 4, 3)) and a.pixels[0, 0].tolist() == list(RED)
    b = src.read()
    assert b.t == 0.5 and b.pixels is pixels
    with pytest.raises(SourceError, match="gone"):
        src.read()
    assert src.read().pixels[3, 3].tolist() == list(BLUE)
    assert src.read() is None
    assert src.read() is None  # at_end="end": the items ran out, as at the end of a file
    assert (src.opens, src.reads) == (1, 6)


def test_fake_source_open_errors_are_raised_once_each():
    src = FakeSource([])
    src.open_errors = [SourceError("not yet"), SourceError("still not")]
    for expected in ("not yet", "still not"):
        with pytest.raises(SourceError, match=expected):
            src.open()
    src.open()
    assert src.opens == 3


def test_a_blocking_fake_source_waits_until_aborted():
    src = FakeSource([(0.0, RED)], realtime=True, at_end="block")
    assert src.read().t == 0.0
    errors: list[Exception] = []

    def reader():
        try:
            src.read()
        except SourceError as err:
            errors.append(err)

    th = threading.Thread(target=reader)
    th.start()
    assert src.wait_reads(2)
    assert th.is_alive(), "read() returned although nothing was left and not aborted"
    src.abort()
    th.join(5)
    assert not th.is_alive() and "aborted" in str(errors[0])


def test_fake_source_declares_what_the_supervisor_needs():
    assert FakeSource([], realtime=True).can_freeze is True
    assert FakeSource([], realtime=False).can_freeze is False
    assert FakeSource([], realtime=True, can_freeze=False).can_freeze is False
    with pytest.raises(ValueError, match="at_end"):
        FakeSource([], at_end="loop")  # type: ignore[arg-type]


def test_solid_frame_is_contiguous_rgb():
    f = solid_frame((1, 2, 3), 2, 5)
    assert f.shape == (2, 5, 3) and f.dtype == np.uint8 and f.flags.c_contiguous
    assert f.reshape(-1, 3).tolist() == [[1, 2, 3]] * 10


# --------------------------------------------------------------------------- the factory


@pytest.mark.parametrize("kind, spec, message", [
    ("file", None, "source.spec (the video path) is empty"),
    ("rtsp", "", "source.spec (the URL) is empty"),
    ("webcam", None, "unknown source kind 'webcam' (known: auto, picamera2, v4l2, file, rtsp)"),
])
def test_the_factory_names_a_bad_kind_or_spec(kind, spec, message):
    with pytest.raises(EdgeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_source(kind, spec)


def test_the_camera_read_timeout_stays_under_the_health_limit():
    for fps in (0.5, 1, 2, 5, 10, 30, 120):
        assert read_timeout(fps) < HEALTH_LIMIT_SECONDS <= health_limit(5.0)
        assert read_timeout(fps) >= min(2.0, 0.9 * HEALTH_LIMIT_SECONDS)


# --------------------------------------------------------------------------- the supervisor


class Run:
    """A supervisor on ``source`` with a ring, started; ``finish()`` waits for the thread to end."""

    def __init__(self, source, **cfg) -> None:
        self.ring = FrameRing(64)
        self.stats = CaptureStats()
        self.stopped = threading.Event()
        self.sup = CaptureSupervisor(self.ring, self.stats, self.stopped)
        self.source = source
        self.sup.open(source)
        self.sup.start(source, SourceConfig(**{"reopen_min_seconds": 0.01, **cfg}))

    def finish(self, timeout: float = 10.0) -> None:
        self.sup._thread.join(timeout)
        assert not self.sup.alive, "the capture thread did not end"

    def seqs(self) -> list[int]:
        return [f.seq for f in self.ring.since(0)]


class Numbered:
    """A source that numbers its own frames with ``seqs`` (a camera restarting its count after a reopen)."""

    name, fps, realtime, can_freeze = "numbered", 10.0, False, False

    def __init__(self, seqs: list[int | Exception]) -> None:
        self.items = list(seqs)
        self.opens = 0

    def open(self) -> None:
        self.opens += 1

    def close(self) -> None:
        pass

    def read(self) -> Frame | None:
        if not self.items:
            return None
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        return Frame(solid_frame((item % 256, 0, 0)), item / 10, item)


@pytest.mark.parametrize("source_seqs, ring_seqs", [
    ([1, 2, 3], [1, 2, 3]),  # the source's own numbers are kept
    ([5, 6, 9], [5, 6, 9]),  # and its gaps (frames the device dropped) stay visible
    ([0, 1, 2], [1, 2, 3]),  # a count from 0 is shifted once: the ring's numbers start above 0
    ([1, 2, SourceError("gone"), 0, 1], [1, 2, 3, 4]),  # a reopened camera counts from 0 again: shifted on
    ([3, 4, SourceError("gone"), 7, 8], [3, 4, 7, 8]),  # one that counts on is left alone
])
def test_frames_are_numbered_in_one_place_and_never_go_back(source_seqs, ring_seqs):
    run = Run(Numbered(source_seqs))
    run.finish()
    assert run.seqs() == ring_seqs
    assert run.ring.closed and run.stats.frames_in == len(ring_seqs)


def test_the_end_of_the_source_closes_the_ring():
    run = Run(FakeSource([(0.0, RED), (0.1, BLUE)]))
    run.finish()
    assert run.ring.closed and not run.sup.failed
    assert [f.t for f in run.ring.since(0)] == [0.0, 0.1]
    assert run.stats.frame_hw == (8, 8) and run.stats.source_state == "ok"


def test_a_source_that_cannot_come_back_fails_for_good():
    run = Run(FakeSource([(0.0, RED), EdgeError("video file x.mp4 does not exist")]))
    run.finish()
    assert run.sup.failed and run.ring.closed
    assert run.stats.source_state == "failed" and "x.mp4" in run.stats.last_error


def test_a_vanished_source_is_reopened_with_backoff():
    src = FakeSource([(0.0, RED), SourceError("unplugged"), (0.1, BLUE)])
    run = Run(src)
    run.finish()
    assert src.opens == 2 and run.stats.reopens == 1 and run.stats.last_error == "unplugged"
    assert len(run.seqs()) == 2


@pytest.mark.parametrize("can_freeze, reopened", [(True, True), (False, False)])
def test_identical_frames_mean_frozen_only_for_a_source_that_can_freeze(can_freeze, reopened):
    src = FakeSource([(k * 0.1, RED) for k in range(40)], realtime=True, interval=0.01, can_freeze=can_freeze)
    run = Run(src, stall_seconds=0.1)
    run.finish()
    assert (src.opens > 1) is reopened
    assert ("frozen" in run.stats.last_error) is reopened


def test_an_absent_source_is_waited_for_by_the_thread():
    src = FakeSource([(0.0, RED)])
    src.open_errors = [SourceError("no camera yet")]
    run = Run(src)
    assert run.stats.source_state in ("reconnecting", "ok")
    run.finish()
    assert src.opens == 2 and run.stats.reopens == 1 and len(run.seqs()) == 1


def test_stop_ends_a_blocked_read_and_closes_the_source():
    src = FakeSource([], realtime=True, at_end="block")
    run = Run(src)
    assert src.wait_reads(1)
    src.abort()  # the read raises SourceError; then stop() ends the backoff wait at once
    run.sup.stop(src, timeout=5)
    assert not run.sup.alive and src.closes >= 1
