"""FrameRing as a pure unit: literal tables, threads waited on with events and joins (never sleep)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge.capture.base import Frame
from edge.ring import FrameRing


def frame(seq: int, t: float | None = None) -> Frame:
    return Frame(np.zeros((2, 2, 3), np.uint8), seq / 10 if t is None else t, seq)


def filled(capacity: int, seqs) -> FrameRing:
    ring = FrameRing(capacity)
    for s in seqs:
        ring.put(frame(s))
    return ring


def seqs(frames) -> list[int]:
    return [f.seq for f in frames]


def test_capacity_must_hold_two_frames():
    with pytest.raises(ValueError):
        FrameRing(1)


@pytest.mark.parametrize("put, holds, dropped", [
    ([], [], 0),
    ([1, 2, 3], [1, 2, 3], 0),
    ([1, 2, 3, 4], [1, 2, 3, 4], 0),
    ([1, 2, 3, 4, 5], [2, 3, 4, 5], 1),
    ([1, 2, 3, 4, 5, 6], [3, 4, 5, 6], 2),
    (list(range(1, 11)), [7, 8, 9, 10], 6),
])
def test_put_keeps_the_newest_and_counts_unread_drops(put, holds, dropped):
    ring = filled(4, put)
    assert seqs(ring.newer(0, timeout=0)) == holds
    assert ring.dropped == dropped
    assert ring.pushed == len(put)
    assert len(ring) == len(holds)


@pytest.mark.parametrize("ops, dropped", [
    # "r" = the reader takes everything new; a number = put that seq (capacity 4)
    ([1, 2, 3, 4, "r", 5, 6], 0),  # 5 and 6 evict 1 and 2, which were read
    ([1, 2, "r", 3, 4, 5, 6, 7], 1),  # 5, 6 evict read frames 1, 2; 7 evicts 3, never read
    ([1, 2, 3, 4, 5, 6], 2),  # nothing read: every eviction is a drop
    ([1, 2, 3, 4, 5, 6, "r", 7, 8, 9, 10], 2),  # the drops before the read stay counted
    ([1, "r", 2, "r", 3, "r", 4, "r", 5, "r", 6, "r"], 0),  # a reader that keeps up never loses a frame
])
def test_dropped_counts_only_frames_never_read(ops, dropped):
    ring = FrameRing(4)
    last = 0
    for op in ops:
        if op == "r":
            got = ring.newer(last, timeout=0)
            last = got[-1].seq if got else last
        else:
            ring.put(frame(op))
    assert ring.dropped == dropped


@pytest.mark.parametrize("after, expected", [
    (0, [3, 4, 5, 6]),
    (3, [4, 5, 6]),
    (5, [6]),
    (6, []),
    (99, []),
])
def test_newer_returns_frames_after_a_seq_in_order(after, expected):
    ring = filled(4, [1, 2, 3, 4, 5, 6])
    assert seqs(ring.newer(after, timeout=0)) == expected


def test_unread_counts_what_the_reader_has_not_taken():
    ring = filled(4, [1, 2, 3])
    assert ring.unread() == 3
    ring.newer(0, timeout=0)
    assert ring.unread() == 0
    ring.put(frame(4))
    assert ring.unread() == 1


def test_newer_times_out_empty_when_nothing_arrives():
    ring = filled(4, [1])
    assert ring.newer(1, timeout=0.01) == []


def test_newer_waits_for_a_frame_from_another_thread():
    ring = filled(4, [1])
    waiting = threading.Event()
    got: list = []

    def reader():
        waiting.set()
        got.extend(ring.newer(1, timeout=10))

    th = threading.Thread(target=reader)
    th.start()
    assert waiting.wait(5)
    ring.put(frame(2))
    th.join(5)
    assert not th.is_alive()
    assert seqs(got) == [2]


def test_close_wakes_a_waiting_reader():
    ring = filled(4, [1])
    waiting = threading.Event()
    got: list = [None]

    def reader():
        waiting.set()
        got[0] = ring.newer(1, timeout=30)

    th = threading.Thread(target=reader)
    th.start()
    assert waiting.wait(5)
    ring.close()
    th.join(5)
    assert not th.is_alive(), "close() did not wake the reader"
    assert got[0] == []
    assert ring.closed


def test_a_closed_ring_still_hands_out_unread_frames():
    ring = filled(4, [1, 2])
    ring.close()
    assert seqs(ring.newer(0, timeout=5)) == [1, 2]
    assert ring.newer(2, timeout=5) == []  # returns at once: closed


def test_reopen_and_clear():
    ring = filled(4, [1, 2])
    ring.close()
    ring.clear()
    ring.reopen()
    assert len(ring) == 0 and not ring.closed
    assert ring.newer(0, timeout=0.01) == []


@pytest.mark.parametrize("seconds, until, expected", [
    (0.2, None, [4, 5, 6]),  # t = 0.4, 0.5, 0.6 (frames at seq / 10 s)
    (0.0, None, [6]),
    (10.0, None, [3, 4, 5, 6]),  # only what the ring still holds
    (0.15, 0.4, [3, 4]),
    (1.0, 0.0, []),
])
def test_last_seconds(seconds, until, expected):
    ring = filled(4, [1, 2, 3, 4, 5, 6])
    assert seqs(ring.last_seconds(seconds, until)) == expected


def test_last_seconds_of_an_empty_ring():
    assert FrameRing(4).last_seconds(5.0) == []


def test_wait_for_room_returns_at_once_with_room():
    ring = filled(8, [1, 2])
    ring.wait_for_room(4, lambda: False, timeout=10)  # 2 unread < 4: no wait


def test_wait_for_room_blocks_until_the_reader_catches_up():
    ring = filled(8, [1, 2, 3, 4])
    blocked = threading.Event()
    released = threading.Event()

    def writer():
        blocked.set()
        ring.wait_for_room(4, lambda: False, timeout=0.05)
        released.set()

    th = threading.Thread(target=writer)
    th.start()
    assert blocked.wait(5)
    assert not released.wait(0.2), "wait_for_room returned with 4 unread frames"
    ring.newer(0, timeout=0)  # the reader takes everything and notifies
    th.join(5)
    assert not th.is_alive()
    assert released.is_set()


def test_wait_for_room_gives_up_when_stopped():
    ring = filled(8, [1, 2, 3, 4])
    stop = threading.Event()
    th = threading.Thread(target=ring.wait_for_room, args=(2, stop.is_set), kwargs={"timeout": 0.05})
    th.start()
    stop.set()
    th.join(5)
    assert not th.is_alive()


def test_since_reads_without_waiting_or_moving_the_reader():
    # a sink (the clip sink) reads the newest frames; the inference thread's cursor and the drop count stay put
    ring = FrameRing(3)
    for seq in (1, 2, 3):
        ring.put(frame(seq))
    assert [f.seq for f in ring.since(1)] == [2, 3]
    assert ring.since(3) == []
    assert ring.unread() == 3
    ring.put(frame(4))  # pushes out seq 1, which the reader never took
    assert ring.dropped == 1


def big(seq: int, h: int = 10, w: int = 10) -> Frame:
    return Frame(np.zeros((h, w, 3), np.uint8), seq / 10, seq)  # 300 bytes at 10x10


@pytest.mark.parametrize("budget, put, holds, dropped", [
    (1000, [1, 2, 3], [1, 2, 3], 0),  # 900 bytes fit
    (1000, [1, 2, 3, 4], [2, 3, 4], 1),  # a fourth frame would make 1200
    (1000, list(range(1, 11)), [8, 9, 10], 7),
    (600, [1, 2, 3], [2, 3], 1),  # exactly two frames
    (100, [1, 2, 3], [3], 2),  # a budget below one frame still keeps the newest
])
def test_byte_budget_drops_the_oldest(budget, put, holds, dropped):
    ring = FrameRing(100, max_bytes=budget)
    for s in put:
        ring.put(big(s))
    assert seqs(ring.since(0)) == holds
    assert ring.dropped == dropped
    assert ring.bytes == 300 * len(holds)


def test_frame_bound_and_byte_bound_together():
    ring = FrameRing(4, max_bytes=10_000)  # 4 frames of 300 bytes: the frame bound is the tighter one
    for s in range(1, 8):
        ring.put(big(s))
    assert seqs(ring.since(0)) == [4, 5, 6, 7]
    assert ring.holds == 4
    assert FrameRing(100, max_bytes=1000).holds == 100  # no frame seen yet: the size is unknown


def test_bytes_follow_the_frame_size_when_it_changes():
    ring = FrameRing(100, max_bytes=1200)
    for s in (1, 2, 3, 4):
        ring.put(big(s))  # 4 x 300
    ring.put(big(5, 20, 10))  # 600 bytes: pushes out 1 and 2
    assert seqs(ring.since(0)) == [3, 4, 5]
    assert ring.bytes == 1200
    assert ring.holds == 2
    ring.clear()
    assert ring.bytes == 0


def test_stats_report_frames_bytes_budget_and_span():
    ring = FrameRing(100, max_bytes=1000)
    assert ring.stats() == {"frames": 0, "bytes": 0, "max_bytes": 1000, "seconds": 0.0}
    for s in (1, 2, 3, 4, 5):
        ring.put(big(s))
    assert ring.stats() == {"frames": 3, "bytes": 900, "max_bytes": 1000, "seconds": 0.2}


def writer_waits_until_read(ring: FrameRing, max_unread: int = 50) -> bool:
    """True when a writer's wait_for_room(max_unread) blocks until the reader takes the frames, then returns."""
    blocked, released = threading.Event(), threading.Event()

    def writer():
        blocked.set()
        ring.wait_for_room(max_unread, lambda: False, timeout=0.05)
        released.set()

    th = threading.Thread(target=writer)
    th.start()
    assert blocked.wait(5)
    waited = not released.wait(0.2)
    ring.newer(0, timeout=0)
    th.join(5)
    return waited and released.is_set()


def test_wait_for_room_respects_the_byte_budget():
    # room for 3 frames by bytes: the writer must wait once half of that (1) is unread, well before a drop
    ring = FrameRing(100, max_bytes=900)
    ring.put(big(1))
    assert writer_waits_until_read(ring), "wait_for_room ignored the byte budget"


def test_a_1080p_clip_stays_within_the_ring_budget(tmp_path):
    """A 1080p file read through the real source at 640x480 at most: the ring's own byte count stays bounded."""
    from conftest import write_noise_video

    from edge.capture.opencv import OpenCVSource

    path = write_noise_video(tmp_path / "hd.avi", frames=30, size=(1920, 1080), fps=25)
    budget = 3_000_000
    ring = FrameRing(1000, max_bytes=budget)
    src = OpenCVSource.file(str(path), paced=False, width=640, height=480)
    with src:
        while (f := src.read()) is not None:
            assert f.pixels.shape == (360, 640, 3)  # 16:9 fitted inside 640x480
            ring.put(f)
            assert ring.bytes <= budget
    assert ring.pushed == 30
    assert len(ring) == budget // (360 * 640 * 3)


@pytest.mark.parametrize("seconds, put_t, holds", [
    (0.25, [0.0, 0.1, 0.2], [1, 2, 3]),
    (0.25, [0.0, 0.1, 0.2, 0.3], [2, 3, 4]),  # 0.0 is more than 0.25 s before 0.3
    (0.25, [0.0, 5.0], [2]),  # a gap: everything older goes, the newest stays
    (10.0, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], [3, 4, 5, 6]),  # the frame bound (4) still holds
])
def test_the_ring_keeps_ring_seconds_of_frames_whatever_the_rate(seconds, put_t, holds):
    ring = FrameRing(4, seconds=seconds)
    for seq, t in enumerate(put_t, start=1):
        ring.put(frame(seq, t))
    assert seqs(ring.since(0)) == holds


def test_wait_for_room_respects_the_seconds_bound():
    ring = FrameRing(100, seconds=0.4)
    for seq, t in ((1, 0.0), (2, 0.1), (3, 0.2)):
        ring.put(frame(seq, t))  # 0.2 s unread: half the ring's seconds
    assert writer_waits_until_read(ring), "wait_for_room let a writer push unread frames out by time"
