"""ClipSink on a real FrameRing filled from a shared clip; the written MP4s are decoded back with OpenCV."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.opencv import read_frames
from edge.config import ClipSinkConfig
from edge.ring import FrameRing
from edge.sinks import sink_class
from edge.sinks.base import Prediction, SinkContext
from edge.sinks.clip import NAME_RE, ClipSink, safe_label
from edge.smoothing import Event

VIDEO = "flipping_a_pancake.mkv"  # 30 fps, 311 frames, 426x240
WALL0 = 1_700_000_000.0  # wall clock of source t = 0


_decoded: dict[Path, list] = {}


@pytest.fixture
def frames(shared_videos):
    """Every frame of the shared clip (decoded once per test run), numbered from 1 as the daemon does."""
    path = shared_videos / VIDEO
    if not path.is_file():
        pytest.skip(f"shared test video {path} not found")
    if path not in _decoded:
        out = list(read_frames(str(path)))
        for i, f in enumerate(out, start=1):
            f.seq = i
        _decoded[path] = out
    return _decoded[path]


@pytest.fixture
def fps(shared_videos) -> float:
    cap = cv2.VideoCapture(str(shared_videos / VIDEO))
    value = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return value


def stamp(t: float) -> str:
    """The name stamp of an event at source time t (local wall time)."""
    return datetime.fromtimestamp(WALL0 + t).strftime("%Y-%m-%dT%H-%M-%S")


def event(rule: str, phase: str, t: float) -> Event:
    return Event(rule=rule, phase=phase, t=t, score=0.9, start=t, peak=0.9, duration=0.0)


def prediction(frame) -> Prediction:
    return Prediction(t=frame.t, wall=WALL0 + frame.t, seq=frame.seq, probs=np.zeros(2), top=[],
                      smoothed=np.zeros(2), smoothed_top=[], frame=frame)


class Driver:
    """Plays frames into a ring as the capture thread does, and a prediction every 6th frame (5 fps) to the sink."""

    def __init__(self, frames, tmp_path: Path, fps: float, ring_seconds: float = 6.0, **cfg) -> None:
        self.frames = frames
        self.ring = FrameRing(int(ring_seconds * fps) + 1)
        self.ctx = SinkContext(labels=["cook", "wash"], ring=self.ring, source_fps=lambda: fps,
                               rules=["cook", "wash"])
        cfg.setdefault("min_free_mb", 0)
        self.dir = tmp_path / "clips"
        self.sink = ClipSink(ClipSinkConfig(dir=str(self.dir), **cfg), self.ctx)
        self.sink.start()
        self.i = 0

    def play_until(self, t: float, starts: dict[float, list[str]] | None = None) -> None:
        """Frames up to source time t; an event start of each listed rule at the first sampled frame >= key."""
        pending = sorted((starts or {}).items())
        while self.i < len(self.frames) and self.frames[self.i].t <= t + 1e-9:
            frame = self.frames[self.i]
            self.ring.put(frame)
            if self.i % 6 == 0:
                evs = []
                while pending and frame.t >= pending[0][0] - 1e-9:
                    evs += [event(rule, "start", frame.t) for rule in pending.pop(0)[1]]
                p = prediction(frame)
                for ev in evs:  # as the sink runner delivers them: a frame's events, then its prediction
                    self.sink.event(ev, p)
                self.sink.emit(p)
            self.i += 1

    def start_t(self, near: float) -> float:
        """The t of the first sampled frame at or after ``near`` (where play_until puts the event)."""
        return next(f.t for k, f in enumerate(self.frames) if k % 6 == 0 and f.t >= near - 1e-9)

    def files(self) -> list[str]:
        """The folder's files, less each clip's poster and metadata (test_clip_h264.py checks those)."""
        names = sorted(p.name for p in self.dir.iterdir())
        return [n for n in names if not (n.endswith((".jpg", ".json")) and Path(n).stem + ".mp4" in names)]


def decode(path: Path) -> tuple[list[np.ndarray], float, str]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} is not playable"
    fps = cap.get(cv2.CAP_PROP_FPS)
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    fourcc = "".join(chr((code >> (8 * k)) & 0xFF) for k in range(4))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return out, fps, fourcc


def frame_times(path: Path) -> np.ndarray:
    """Each frame's presentation time (s), as OpenCV reads it."""
    cap = cv2.VideoCapture(str(path))
    times = []
    while cap.grab():
        times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    cap.release()
    return np.array(times)


def nearest(decoded: np.ndarray, frames, candidates: range) -> int:
    """Index of the source frame (among candidates) the decoded frame looks most like."""
    diffs = {k: float(np.mean(np.abs(decoded.astype(np.int16) - frames[k].pixels.astype(np.int16))))
             for k in candidates}
    return min(diffs, key=diffs.get)


def index_at(frames, t: float) -> int:
    return min(range(len(frames)), key=lambda k: abs(frames[k].t - t))


def test_registry_names_the_clip_sink():
    assert sink_class("clip") is ClipSink


def test_clip_holds_pre_and_post_seconds_at_the_source_fps(frames, fps, tmp_path):
    d = Driver(frames, tmp_path, fps, pre_seconds=2.0, post_seconds=3.0)
    d.play_until(10.0, {4.0: ["cook"]})
    start = d.start_t(4.0)
    assert d.sink.status()["recording"] is None  # finished by itself once t passed start + 3 s
    d.sink.close()
    names = d.files()
    assert len(names) == 1 and NAME_RE.match(names[0])
    assert names[0] == f"{stamp(start)}_cook.mp4"
    decoded, clip_fps, fourcc = decode(d.dir / names[0])
    assert fourcc.lower() in ("avc1", "h264") and d.sink.status()["encoder"] in ("libx264", "h264_v4l2m2m")
    # every frame 1/fps after the one before; the header's average rate is a little off where FFmpeg < 6
    # (Debian's on 32-bit Arm) gives the last frame no duration: OpenCV 4.6 reads 29.948 there
    assert np.allclose(np.diff(frame_times(d.dir / names[0])), 1 / fps, atol=1e-3)
    assert clip_fps == pytest.approx(fps, rel=0.005)
    assert abs(len(decoded) - 5.0 * fps) <= 1
    assert abs(len(decoded) / clip_fps - 5.0) <= 1 / fps
    # the first frame is the one 2 s before the start, the last the one just before start + 3 s
    first, last = index_at(frames, start - 2.0), index_at(frames, start + 3.0) - 1
    assert nearest(decoded[0], frames, range(first - 15, first + 15)) == first
    assert nearest(decoded[-1], frames, range(last - 15, last + 15)) == last
    st = d.sink.status()
    assert st["saved"] == 1 and st["failed"] == 0 and st["frames_missed"] == 0 and st["last_clip"] == names[0]


def test_close_mid_clip_writes_a_shorter_playable_file(frames, fps, tmp_path):
    d = Driver(frames, tmp_path, fps, pre_seconds=2.0, post_seconds=5.0)
    d.play_until(5.0, {4.0: ["cook"]})
    start = d.start_t(4.0)
    assert d.sink.status()["recording"]
    assert any(n.endswith(".part.mp4") for n in d.files())  # still being written
    shown = frames[d.i - 1].t  # the newest frame in the ring
    d.sink.close()
    d.sink.close()  # idempotent
    names = d.files()
    assert len(names) == 1 and names[0].endswith("_cook.mp4")  # no temp file left
    decoded, clip_fps, _ = decode(d.dir / names[0])
    expected = (shown - (start - 2.0)) * fps + 1
    assert abs(len(decoded) - expected) <= 1
    assert len(decoded) < 7.0 * fps - 1


def test_a_start_during_a_clip_extends_it_and_names_both_rules(frames, fps, tmp_path):
    d = Driver(frames, tmp_path, fps, pre_seconds=1.0, post_seconds=2.0)
    d.play_until(10.0, {3.0: ["cook"], 4.0: ["wash"]})
    first, second = d.start_t(3.0), d.start_t(4.0)
    d.sink.close()
    names = d.files()
    assert len(names) == 1 and names[0].endswith("_cook+wash.mp4")
    decoded, _, _ = decode(d.dir / names[0])
    assert abs(len(decoded) - (second + 2.0 - (first - 1.0)) * fps) <= 1


def test_max_seconds_caps_an_extended_clip(frames, fps, tmp_path):
    d = Driver(frames, tmp_path, fps, pre_seconds=1.0, post_seconds=2.0, max_seconds=2.5)
    d.play_until(10.0, {3.0: ["cook"], 4.0: ["cook"]})
    d.sink.close()
    (name,) = d.files()
    decoded, _, _ = decode(d.dir / name)
    assert abs(len(decoded) - 2.5 * fps) <= 1


def test_starts_of_other_rules_make_no_clip(frames, fps, tmp_path):
    d = Driver(frames, tmp_path, fps, rules=["cook"], pre_seconds=0.5, post_seconds=0.5)
    d.play_until(4.0, {2.0: ["wash"]})
    d.sink.close()
    assert d.files() == []


def test_retention_deletes_the_oldest_beyond_max_files(frames, fps, tmp_path):
    d = Driver(frames, tmp_path, fps, pre_seconds=0.5, post_seconds=0.5, max_files=2)
    d.dir.mkdir(parents=True, exist_ok=True)
    (d.dir / "notes.txt").write_text("not a clip")
    (d.dir / "holiday.mp4").write_bytes(b"not ours")
    d.play_until(10.0, {2.0: ["cook"], 5.0: ["cook"], 8.0: ["cook"]})
    d.sink.close()
    clips = [n for n in d.files() if NAME_RE.match(n)]
    assert clips == [f"{stamp(d.start_t(5.0))}_cook.mp4", f"{stamp(d.start_t(8.0))}_cook.mp4"]  # the first clip was deleted
    assert "notes.txt" in d.files() and "holiday.mp4" in d.files()
    assert d.sink.status()["deleted"] == 1 and d.sink.status()["saved"] == 3


def test_retention_by_size_keeps_the_newest_clip(frames, fps, tmp_path):
    d = Driver(frames, tmp_path, fps, pre_seconds=0.5, post_seconds=0.5, max_mb=0.001)
    d.play_until(10.0, {2.0: ["cook"], 5.0: ["cook"]})
    d.sink.close()
    (name,) = d.files()
    assert name == f"{stamp(d.start_t(5.0))}_cook.mp4"


def test_start_removes_temp_files_left_by_a_crash(frames, fps, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / ".2026-11-22T14-03-05_cook.part.mp4").write_bytes(b"\0" * 100)
    (clips / ".hidden").write_text("kept")
    d = Driver(frames, tmp_path, fps)
    d.sink.close()
    assert d.files() == [".hidden"]


def test_low_disk_space_skips_the_clip(frames, fps, tmp_path):
    d = Driver(frames, tmp_path, fps, pre_seconds=0.5, post_seconds=0.5, min_free_mb=1_000_000)
    d.play_until(4.0, {2.0: ["cook"]})
    d.sink.close()
    assert d.files() == []
    st = d.sink.status()
    assert st["skipped"] == 1 and "min_free_mb" in st["clip_error"]


def test_disk_full_while_writing_deletes_the_partial_clip_and_keeps_going(frames, fps, tiny_disk):
    d = Driver(frames, tiny_disk, fps, pre_seconds=2.0, post_seconds=3.0)
    d.play_until(10.0, {4.0: ["cook"], 8.0: ["cook"]})  # 64 KiB cannot hold 5 s of 426x240
    d.sink.close()
    assert d.files() == []  # neither a partial clip nor a temp file
    st = d.sink.status()
    assert st["failed"] >= 1 and st["saved"] == 0 and "clip_error" in st


def test_safe_label():
    assert safe_label("cook") == "cook"
    assert safe_label("flip a pancake/../x") == "flip-a-pancake-..-x"
    assert safe_label("///") == "event"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", safe_label("ça va? *"))


def test_disk_full_is_caught_where_opencv_does_not_report_failed_writes(frames, fps, tiny_disk, monkeypatch):
    """OpenCV 4.x's VideoWriter.write returns None even when the disk is full: the read-back check catches it."""
    real = cv2.VideoWriter

    class QuietWriter:
        def __init__(self, *args):
            self._w = real(*args)

        def isOpened(self):
            return self._w.isOpened()

        def write(self, image):
            self._w.write(image)  # the real write to the real full disk; only the result is hidden

        def release(self):
            self._w.release()

    monkeypatch.setattr(cv2, "VideoWriter", QuietWriter)
    d = Driver(frames, tiny_disk, fps, pre_seconds=2.0, post_seconds=3.0, codec="mp4v")
    d.play_until(10.0, {4.0: ["cook"]})
    d.sink.close()
    assert d.files() == []
    st = d.sink.status()
    assert st["failed"] == 1 and "not a readable video" in st["clip_error"]


def test_a_source_clock_restart_finishes_the_clip(frames, fps, tmp_path):
    """A reopened camera starts its timestamps at 0 again: the clip ends there instead of waiting for its window."""
    from edge.capture.base import Frame

    d = Driver(frames, tmp_path, fps, pre_seconds=1.0, post_seconds=5.0)
    d.play_until(5.0, {4.0: ["cook"]})
    start, newest = d.start_t(4.0), frames[d.i - 1]
    restarted = Frame(frames[0].pixels, 0.0, newest.seq + 1)
    d.ring.put(restarted)
    d.sink.emit(prediction(restarted))
    assert d.sink.status()["recording"] is None
    (name,) = d.files()
    decoded, _, _ = decode(d.dir / name)
    assert abs(len(decoded) - ((newest.t - (start - 1.0)) * fps + 1)) <= 1
    d.sink.close()
