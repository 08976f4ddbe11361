"""H.264 clips (#16): what a phone needs (h264, yuv420p, the index first), real durations, the poster and
metadata, the mp4v fallback, dropped frames, and a clip in progress at SIGTERM. Clips are decoded with PyAV
(and ffprobe where it is installed)."""

from __future__ import annotations

import json
import logging
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_clip import Driver, decode, fps, frames, index_at, nearest, prediction  # noqa: F401 (fixtures)

from edge.capture.base import Frame
from edge.prediction import Prediction
from edge.sinks import encoders
from edge.smoothing import Event

av = pytest.importorskip("av", reason="PyAV is not installed: pip install av (./install.sh installs it)")


@pytest.fixture(autouse=True)
def fresh_encoder_choice(monkeypatch):
    """Each test probes the encoders anew (the choice is cached per process), and warns anew."""
    monkeypatch.setattr(encoders, "_chosen", {})
    monkeypatch.setattr(encoders, "_warned", False)


def atoms(path: Path) -> list[str]:
    """The MP4's top-level boxes in file order (ftyp, moov, mdat ...)."""
    out, data = [], path.read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        out.append(kind.decode("latin-1"))
        pos += max(size, 8)
    return out


def stream_facts(path: Path) -> dict:
    """Codec, pixel format, duration (s) and each frame's presentation time (s, from 0), decoded with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * f.time_base) for f in container.decode(stream)]
        return {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "duration": float(stream.duration * stream.time_base), "times": [t - times[0] for t in times],
                "size": (stream.codec_context.width, stream.codec_context.height)}


def the_clip(d: Driver) -> Path:
    (name,) = [n for n in d.files() if n.endswith(".mp4")]
    return d.dir / name


def test_a_clip_is_h264_yuv420p_with_the_index_first_and_the_window_within_one_frame(frames, fps, tmp_path):
    d = Driver(frames, tmp_path, fps, pre_seconds=2.0, post_seconds=3.0)
    d.play_until(10.0, {4.0: ["cook"]})
    d.sink.close()
    clip = the_clip(d)
    facts = stream_facts(clip)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert abs(facts["duration"] - 5.0) <= 1 / fps
    assert abs(len(facts["times"]) - 5.0 * fps) <= 1
    boxes = atoms(clip)
    assert boxes.index("moov") < boxes.index("mdat")  # faststart: a phone can play before the whole file is in
    meta = json.loads(clip.with_suffix(".json").read_text())
    assert meta["codec"] == "h264" and meta["encoder"] == d.sink.status()["encoder"] != "mp4v"
    assert meta["clip"] == clip.name and meta["frames"] == len(facts["times"]) and meta["frames_dropped"] == 0
    assert abs(meta["seconds"] - facts["duration"]) <= 1 / fps


def test_ffprobe_reads_the_clip_as_h264_yuv420p(frames, fps, tmp_path):
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.skip("ffprobe is not installed (apt install ffmpeg; .ci/run installs it)")
    d = Driver(frames, tmp_path, fps, pre_seconds=1.0, post_seconds=2.0)
    d.play_until(6.0, {3.0: ["cook"]})
    d.sink.close()
    done = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "stream=codec_name,pix_fmt,duration", "-of", "json", str(the_clip(d))],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    (stream,) = json.loads(done.stdout)["streams"]
    assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p"
    assert abs(float(stream["duration"]) - 3.0) <= 1 / fps


def variable_rate(frames) -> list[Frame]:
    """The clip at 30 fps for its first 4 s, then every third frame (10 fps): a camera that slowed down in the dark."""
    kept = [f for k, f in enumerate(frames) if f.t < 4.0 or k % 3 == 0]
    return [Frame(f.pixels, f.t, seq) for seq, f in enumerate(kept, start=1)]


@pytest.mark.parametrize("codec", ["auto", "mp4v"])
def test_a_variable_rate_source_gives_the_real_duration(frames, fps, tmp_path, codec):
    vfr = variable_rate(frames)
    d = Driver(vfr, tmp_path, fps, pre_seconds=2.0, post_seconds=3.0, codec=codec)
    d.play_until(10.0, {4.0: ["cook"]})
    d.sink.close()
    clip = the_clip(d)
    start = d.start_t(4.0)
    window = [f.t for f in vfr if start - 2.0 - 0.25 / fps <= f.t < start + 3.0 - 0.25 / fps]
    if codec == "auto":  # every frame keeps its own time
        times = stream_facts(clip)["times"]
        assert len(times) == len(window)
        assert np.allclose(times, np.array(window) - window[0], atol=1e-3)
        assert abs(stream_facts(clip)["duration"] - 5.0) <= window[-1] - window[-2] + 1e-6  # one frame, at 10 fps
    else:  # a constant rate: frames held to keep the time
        decoded, clip_fps, _ = decode(clip)
        assert abs(len(decoded) / clip_fps - 5.0) <= window[-1] - window[-2] + 1e-6
        assert len(decoded) > len(window) + 10


def test_the_poster_is_the_peak_frame_and_the_metadata_names_it(frames, fps, tmp_path):
    """Scores rise to a peak 1.5 s after the start and fall again: the poster is the frame the model saw then."""
    d = Driver(frames, tmp_path, fps, pre_seconds=1.0, post_seconds=3.0)
    start = d.start_t(3.0)
    peak_t = d.start_t(4.5)
    for k, frame in enumerate(frames[:index_at(frames, 8.0)]):
        d.ring.put(frame)
        if k % 6 == 0:
            p = prediction(frame)
            score = 0.9 - abs(frame.t - peak_t) / 10
            p = Prediction(**{**p.__dict__, "scores": {"cook": score}})
            if frame.t == start:
                d.sink.event(Event(rule="cook", phase="start", t=start, score=score, start=start, peak=score,
                                   duration=0.0), p)
            d.sink.emit(p)
    d.sink.close()
    clip = the_clip(d)
    poster = clip.with_suffix(".jpg")
    meta = json.loads(clip.with_suffix(".json").read_text())
    assert meta["poster"] == poster.name and meta["rules"] == ["cook"]
    assert meta["peak"]["t"] == pytest.approx(peak_t, abs=1e-3) and meta["peak"]["score"] == pytest.approx(0.9)
    image = cv2.cvtColor(cv2.imread(str(poster)), cv2.COLOR_BGR2RGB)
    assert image.shape == frames[0].pixels.shape
    k = index_at(frames, peak_t)
    assert nearest(image, frames, range(k - 15, k + 15)) == k


def test_retention_deletes_the_poster_and_metadata_with_their_clip(frames, fps, tmp_path):
    d = Driver(frames, tmp_path, fps, pre_seconds=0.5, post_seconds=0.5, max_files=1)
    d.play_until(10.0, {2.0: ["cook"], 5.0: ["cook"]})
    d.sink.close()
    names = sorted(p.name for p in d.dir.iterdir())
    stem = the_clip(d).stem
    assert names == [f"{stem}.jpg", f"{stem}.json", f"{stem}.mp4"]


def test_without_pyav_clips_fall_back_to_mp4v_with_one_warning(frames, fps, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError, as where PyAV is not installed
    caplog.set_level(logging.WARNING, logger="edge.sinks.encoders")
    d = Driver(frames, tmp_path, fps, pre_seconds=1.0, post_seconds=1.0)
    d.play_until(10.0, {3.0: ["cook"], 6.0: ["wash"]})
    d.sink.close()
    clips = sorted(n for n in d.files() if n.endswith(".mp4"))
    assert len(clips) == 2 and d.sink.status()["encoder"] == "mp4v"
    for name in clips:
        decoded, _, fourcc = decode(d.dir / name)
        assert fourcc.lower() in ("mp4v", "fmp4") and abs(len(decoded) - 2.0 * fps) <= 1
        assert json.loads((d.dir / name).with_suffix(".json").read_text())["codec"] == "mpeg4"
    # edge's own: where PyAV < 13 routes FFmpeg's log to Python's, swscale's notes are there too
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("edge.")]
    assert len(warnings) == 1 and "phones" in warnings[0] and "pip install av" in warnings[0]


def test_a_named_encoder_that_does_not_work_falls_back_to_libx264(frames, fps, tmp_path, caplog):
    if not encoders.probe(encoders.HARDWARE, 426, 240):
        pytest.skip("this machine has a working h264_v4l2m2m encoder")
    caplog.set_level(logging.WARNING, logger="edge.sinks.encoders")
    d = Driver(frames, tmp_path, fps, pre_seconds=0.5, post_seconds=0.5, codec="h264_v4l2m2m")
    d.play_until(4.0, {2.0: ["cook"]})
    d.sink.close()
    assert d.sink.status()["encoder"] == "libx264" and stream_facts(the_clip(d))["codec"] == "h264"
    assert any("h264_v4l2m2m" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_frames_the_writer_could_not_keep_up_with_are_dropped_and_counted(frames, fps, tmp_path, caplog):
    """A ring of 4 frames and a prediction every 6th: 2 of every 6 frames are gone before the sink reads them."""
    caplog.set_level(logging.INFO, logger="edge.sinks.clip")
    d = Driver(frames, tmp_path, fps, ring_seconds=0.1, pre_seconds=0.0, post_seconds=3.0)
    d.play_until(8.0, {3.0: ["cook"]})
    d.sink.close()
    meta = json.loads(the_clip(d).with_suffix(".json").read_text())
    assert meta["frames_dropped"] == d.sink.status()["frames_missed"] > 0
    assert abs(meta["frames"] + meta["frames_dropped"] - 3.0 * fps) <= 2
    assert len(stream_facts(the_clip(d))["times"]) == meta["frames"]
    saved = [r.getMessage() for r in caplog.records if r.getMessage().startswith("clip saved")]
    assert len(saved) == 1 and f"{meta['frames_dropped']} frames dropped" in saved[0]


def test_odd_frame_sizes_are_cropped_to_even_for_yuv420p_and_a_new_size_is_scaled(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (121, 161, 3), np.uint8)
    writer = encoders.PyAVWriter(tmp_path / "odd.mp4", encoders.SOFTWARE, 161, 121, 15.0)
    for k in range(5):
        writer.write(rgb, k / 15)
    writer.write(np.zeros((240, 320, 3), np.uint8), 5 / 15)  # the source changed size mid-clip: scaled to fit
    writer.close()
    facts = stream_facts(tmp_path / "odd.mp4")
    assert facts["size"] == (160, 120) and len(facts["times"]) == 6


# --------------------------------------------------------------------------- the daemon at SIGTERM


def test_sigterm_mid_clip_leaves_a_playable_h264_clip(tmp_path, tiny_model_path, tiny_labels_path, make_video):
    """A red video trips the `red` rule after 1 s; its 60 s post-roll is still being written when SIGTERM comes."""
    from helpers import edge_run, sigterm, wait_for_file, write_config

    video = make_video(tmp_path / "red.mp4", (255, 0, 0), seconds=2.0, fps=15.0, size=(96, 64))
    clips, status, stderr = tmp_path / "clips", tmp_path / "status.json", tmp_path / "stderr.txt"
    cfg = write_config(tmp_path / "config.yaml", {
        "model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path)},
        "source": {"kind": "file", "spec": str(video), "loop": True},
        "watch": [{"name": "red", "labels": ["red"], "enter": 0.3, "exit": 0.1, "min_duration": 1.0}],
        "sinks": [{"type": "clip", "dir": str(clips), "pre_seconds": 1.0, "post_seconds": 60.0,
                   "min_free_mb": 0}],
        "status": {"path": str(status), "interval": 0.2}})
    with edge_run(cfg, stderr, cwd=tmp_path) as proc:
        wait_for_file(proc, stderr, "recording", timeout=30)  # "clip ...: red started at ..., recording ..."
        wait_for_file(proc, status, '"recording": "', timeout=10)
        assert sigterm(proc, timeout=15) == 0
    assert "Traceback" not in stderr.read_text()
    (clip,) = clips.glob("*_red.mp4")
    assert not list(clips.glob(".*.part.mp4"))
    facts = stream_facts(clip)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert 0.9 < facts["duration"] < 60  # the 1 s pre-roll at least, cut short by the stop
    meta = json.loads(clip.with_suffix(".json").read_text())
    assert meta["frames"] == len(facts["times"])
    assert meta["poster"] == clip.stem + ".jpg" and clip.with_suffix(".jpg").is_file()


# --------------------------------------------------------------------------- config and edge doctor


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("codec", "h265", "'auto', 'h264_v4l2m2m', 'libx264', 'mp4v' or 'avc1'"),
    ("crf", 52, "less than or equal to 51"),
    ("preset", "placebo", "'ultrafast'"),
])
def test_a_bad_encoder_setting_names_the_key(key, value, needle):
    from edge import config
    from edge.errors import EdgeError

    with pytest.raises(EdgeError) as err:
        config.parse({"sinks": [{"type": "clip", key: value}]})
    assert f"sinks[0].{key}" in str(err.value) and needle in str(err.value)


def test_doctor_names_the_encoder_clips_will_use():
    from edge import doctor

    assert doctor.check_clip_encoder("h264_v4l2m2m", "").detail == "h264_v4l2m2m (H.264, hardware)"
    software = doctor.check_clip_encoder("libx264", "h264_v4l2m2m: no hardware encoder here")
    assert software.status == doctor.OK and "software" in software.detail
    fallback = doctor.check_clip_encoder("mp4v", "libx264: PyAV does not import", machine="aarch64")
    assert fallback.status == doctor.WARN and "not play on phones" in fallback.detail
    assert "pip install av" in fallback.fix
    assert "apt install python3-av" in doctor.check_clip_encoder("mp4v", "", machine="armv7l").fix
    here = doctor.check_clip_encoder()  # PyAV is installed here (a runtime dependency): H.264 it is
    assert here.status == doctor.OK and here.detail.split()[0] in ("h264_v4l2m2m", "libx264")
