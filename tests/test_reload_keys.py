"""What a reload (SIGHUP, `systemctl reload edge`) applies, and how: the frame ring's bounds (source.ring_seconds,
ring_mb) in place, without reopening the source and with every reader's frames kept; gap_reset_seconds and the
status intervals live; an edited notify urls_file read again; status.path named as the one key that waits for a
restart. The docs' list (docs/daemon.md, "Reload") is this file's list."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from helpers import write_config
from test_daemon import red_frames

from edge import config
from edge.capture.base import Frame
from edge.capture.fake import FakeSource
from edge.daemon import Daemon
from edge.ring import FrameRing
from edge.service import Notifier

MB = 2**20


def frame(seq: int, nbytes: int = 12) -> Frame:
    return Frame(np.zeros(nbytes, np.uint8), seq / 10, seq)  # 10 frames a second


def seqs(frames) -> list[int]:
    return [f.seq for f in frames]


# --------------------------------------------------------------------------- FrameRing.resize


@pytest.mark.parametrize("bounds, kept", [
    ((100, None, 0.5), [15, 16, 17, 18, 19, 20]),  # by time: the newest 0.5 s
    ((4, None, 10.0), [17, 18, 19, 20]),  # by count
    ((100, 36, 10.0), [18, 19, 20]),  # by bytes: 3 frames of 12 bytes
    ((100, None, 30.0), list(range(1, 21))),  # a bigger ring keeps all it has
])
def test_resize_lets_go_of_the_oldest_frames_only(bounds, kept):
    ring = FrameRing(100, seconds=10.0)
    for s in range(1, 21):
        ring.put(frame(s))
    ring.resize(*bounds)
    assert seqs(ring.since(0)) == kept
    assert ring.bytes == 12 * len(kept)
    assert ring.dropped == 20 - len(kept)  # none had been read by the inference thread


def test_a_reader_behind_the_newest_frames_loses_none_across_a_resize():
    """A clip in progress reads ``since(last written)`` on each prediction: shrinking the ring under it, with the
    capture going on, leaves it every frame after its cursor; a bigger ring then holds more again."""
    ring = FrameRing(100, max_bytes=1000, seconds=4.0)
    written: list[int] = []
    seq = 0
    for step in range(12):
        for _ in range(3):  # frames arrive between two reads
            seq += 1
            ring.put(frame(seq))
        if step == 4:
            ring.resize(8, 12 * 5, 1.0)  # smaller in every bound: 5 frames
        if step == 8:
            ring.resize(100, 1000, 4.0)
        written += seqs(ring.since(written[-1] if written else 0))
    assert written == list(range(1, seq + 1))
    assert len(ring) == 5 + 3 * 3  # grown back: the 5 it kept, and every frame of the 3 steps since


def test_resize_checks_its_bounds():
    ring = FrameRing(10)
    with pytest.raises(ValueError):
        ring.resize(1, None, None)
    with pytest.raises(ValueError):
        ring.resize(10, 0, None)


# --------------------------------------------------------------------------- the daemon's reload


@pytest.fixture
def live(tmp_path, tiny_model_path, tiny_labels_path, recorder):
    """``live(size=64, sources=None, sinks=())``: a running daemon on a realtime fake of size x size frames (or on
    ``sources``, one for each opening) with a record sink (and ``sinks``) -> (daemon, config path, config dict,
    first source); every source aborted and the daemon stopped at the end of the test."""
    running = []

    def start(size: int = 64, sources: list[FakeSource] | None = None, sinks=()):
        base = {"model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path)},
                "sinks": [{"type": "record", "queue": 10000}, *sinks],
                "status": {"path": str(tmp_path / "status.json")}}
        path = write_config(tmp_path / "config.yaml", base)
        sources = sources or [FakeSource(red_frames(), realtime=True, fps=5, interval=0.01, at_end="block",
                                         size=size)]
        built = iter(sources)
        daemon = Daemon(config.load(path), notifier=Notifier(address=""), config_path=path,
                        source_factory=lambda _cfg: next(built) if len(sources) > 1 else sources[0])
        running.append((daemon, sources))
        daemon.start()
        assert recorder.sink.wait_for(lambda ps: len(ps) >= 3)
        return daemon, path, base, sources[0]

    yield start
    for daemon, sources in running:
        for src in sources:
            src.abort()
        daemon.shutdown()


def test_reload_resizes_the_ring_in_place_without_reopening_the_source(live, recorder, caplog):
    daemon, path, base, src = live()
    ring, sink = daemon.ring, recorder.sink
    write_config(path, {**base, "source": {"ring_seconds": 2, "ring_mb": 3, "gap_reset_seconds": 9}})
    caplog.set_level(logging.INFO, logger="edge")
    assert daemon.reload() is True
    assert "(changed: source)" in caplog.text
    assert daemon.ring is ring and daemon.source is src and src.opens == 1  # the camera was not reopened
    assert (ring.seconds, ring.max_bytes) == (2.0, 3 * MB)
    assert daemon.snapshot()["ring"]["max_bytes"] == 3 * MB
    assert daemon.inference.gap == 9.0
    assert daemon.runners[0].sink is sink  # the sinks, which hold the ring, were not rebuilt
    n = len(sink.predictions)
    assert sink.wait_for(lambda ps: len(ps) >= n + 3)
    assert src.wait_reads(src.reads + 15)  # 3 s of frames more than the ring keeps now
    assert 1.0 < ring.stats()["seconds"] <= 2.0 + 1e-6


def test_a_ring_too_small_for_its_seconds_is_said_again_with_the_new_ring_mb(live, caplog):
    daemon, path, base, src = live(size=400)  # 480 000 bytes a frame: 48 MB hold 4 s at 5 fps, 1 MB two frames
    caplog.set_level(logging.INFO, logger="edge")
    assert "raise source.ring_mb" not in caplog.text
    write_config(path, {**base, "source": {"ring_mb": 1}})  # the smallest budget the schema allows
    assert daemon.reload() is True
    warnings = [r.getMessage() for r in caplog.records if "raise source.ring_mb" in r.getMessage()]
    assert warnings == ["the frame ring holds 2 frames of 400x400, 0.4 s at 5 fps, not source.ring_seconds (4 s): "
                        "raise source.ring_mb (1 MB) or lower source.width/height"]
    assert src.wait_reads(src.reads + 5)
    assert daemon.ring.bytes <= MB and len(daemon.ring) == 2


def test_reload_with_another_source_key_still_reopens_the_source_and_sizes_its_ring(live):
    sources = [FakeSource(red_frames(), realtime=True, fps=5, interval=0.01, at_end="block", name=f"fake{i}")
               for i in range(2)]
    daemon, path, base, _ = live(sources=sources)
    ring = daemon.ring
    write_config(path, {**base, "source": {"stall_seconds": 7, "ring_mb": 5}})
    sources[0].abort()
    assert daemon.reload() is True
    assert daemon.source is sources[1] and daemon.ring is ring and ring.max_bytes == 5 * MB
    assert sources[1].wait_reads(5)


def test_reload_names_status_path_as_waiting_for_a_restart(live, tmp_path, caplog):
    daemon, path, base, _ = live()
    write_config(path, {**base, "status": {"path": str(tmp_path / "other.json"), "interval": 0.5}})
    caplog.set_level(logging.INFO, logger="edge")
    assert daemon.reload() is True
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"reload: status.path changed: it takes effect at the next restart (systemctl restart edge); "
                        f"status.json stays {tmp_path / 'status.json'} until then"]
    assert daemon.cfg.status.interval == 0.5  # the intervals are read on each pass of the main loop


def test_reload_reads_an_edited_notify_urls_file_again(live, tmp_path, recorder, monkeypatch):
    pytest.importorskip("apprise")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    urls = tmp_path / "notify.urls"
    urls.write_text("json://127.0.0.1:9/a\n")
    urls.chmod(0o600)
    daemon, _, _, _ = live(sinks=[{"type": "notify", "urls_file": str(urls), "spool_dir": str(tmp_path / "spool")}])
    before = list(daemon.runners)
    assert daemon.reload() is True
    assert daemon.runners == before  # nothing changed: the sinks run on (a clip, a GPIO pin are not cut)
    urls.write_text("json://127.0.0.1:9/b\n")  # Ansible pushed new URLs, then reloads
    assert daemon.reload() is True
    assert daemon.runners != before and len(daemon.runners) == 2
    assert recorder.sink.wait_for(lambda ps: len(ps) >= 3)  # the new record sink gets predictions
