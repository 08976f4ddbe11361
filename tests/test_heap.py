"""edge.heap: the heap's free pages handed back (glibc), and the daemon doing it on its own."""

from __future__ import annotations

import threading

import pytest

from edge import heap
from edge.bench import rss_mb

glibc = pytest.mark.skipif(heap.malloc_trim() is None, reason="no glibc malloc_trim here (musl, macOS)")


@glibc
def test_trim_hands_freed_heap_pages_back():
    # 100 kB blocks live in the heap (under glibc's mmap threshold); keeping every other one leaves 100 kB
    # holes between kept blocks, which glibc does not give back when they are freed
    blocks = [bytearray(100_000) for _ in range(400)]
    pins = blocks[1::2]
    del blocks
    before = rss_mb("RssAnon")
    assert heap.trim() is True
    assert before - rss_mb("RssAnon") >= 10.0  # of the ~20 MB freed
    assert len(pins) == 200


def test_without_glibc_trim_says_so(monkeypatch):
    monkeypatch.setattr(heap, "malloc_trim", lambda: None)
    assert heap.trim() is False


def test_the_daemon_trims_its_heap_every_trim_every_seconds(tiny_config, recorder, monkeypatch):
    from test_daemon import make_daemon, red_frames

    from edge.capture.fake import FakeSource

    trims = []
    twice = threading.Event()

    def counted():
        trims.append(1)
        if len(trims) >= 2:
            twice.set()
        return True

    monkeypatch.setattr(heap, "trim", counted)
    src = FakeSource(red_frames(), realtime=True, fps=5, interval=0.01, at_end="block")
    daemon = make_daemon(tiny_config(), src)
    daemon.TRIM_EVERY = 0.2
    result = []
    th = threading.Thread(target=lambda: result.append(daemon.run(install_signals=False)), name="test-run")
    th.start()
    try:
        assert twice.wait(10), "the daemon did not trim its heap"
    finally:
        src.abort()
        daemon.stop()
        th.join(10)
    assert result == [0]
