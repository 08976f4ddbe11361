"""The overlay sink: render (pixel checks), fbdev (decoded bytes), snapshot, drm (fake camera), auto, end to end."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.base import Frame
from edge.config import OverlaySinkConfig
from edge.engine import Scored
from edge.sinks import build
from edge.sinks.base import Prediction, SinkContext
from edge.sinks.displays import (DrmDisplay, FbdevDisplay, NullDisplay, RecordingDisplay, SnapshotDisplay,
                                 letterbox_rect, pick_display, read_fb_geometry)
from edge.sinks.overlay import BANNER_RGB, BAR_RGB, DIM_TEXT_RGB, PANEL_ALPHA, OverlaySink, render, render_layer
from edge.smoothing import Event

GREY = (90, 110, 130)  # a frame colour that none of the overlay colours can come from


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def prediction(frame: np.ndarray | None = None, scores=(("walking", 0.8), ("running", 0.4)),
               active: tuple[str, ...] = (), t: float = 30.0) -> Prediction:
    top = [Scored(label, score) for label, score in scores]
    act = {rule: Event(rule=rule, phase="start", t=t - 12, score=0.7, start=t - 12, peak=0.7, duration=0.0)
           for rule in active}
    return Prediction(t=t, wall=1_700_000_000.0, seq=7, probs=np.zeros(len(top)), top=top,
                      smoothed=np.zeros(len(top)), smoothed_top=top, active=act,
                      frame=Frame(frame, t, 7) if frame is not None else None, model_fps=4.5, drops=2)


def grey(h: int = 480, w: int = 640) -> np.ndarray:
    frame = np.empty((h, w, 3), np.uint8)
    frame[...] = GREY
    return frame


def colour_mask(img: np.ndarray, rgb) -> np.ndarray:
    return np.all(img[..., :3] == np.asarray(rgb, np.uint8), axis=-1)


def bar_lengths(img: np.ndarray) -> list[int]:
    """Length in pixels of each bar (bar-coloured pixels on one row through each horizontal band)."""
    rows = np.flatnonzero(colour_mask(img, BAR_RGB).any(axis=1))
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    return [int(colour_mask(img, BAR_RGB)[band[len(band) // 2]].sum()) for band in bands if len(band)]


def cfg(**kw) -> OverlaySinkConfig:
    return OverlaySinkConfig(**kw)


# --------------------------------------------------------------------------- render


@pytest.mark.parametrize("h,w", [(480, 640), (1080, 1920)])
def test_render_draws_panel_text_and_proportional_bars(h, w):
    frame = grey(h, w)
    before = frame.copy()
    out = render(frame, prediction(frame))
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(frame, before), "the input frame was modified"
    panel = (slice(0, h // 3), slice(0, w // 2))
    assert (out[panel] != frame[panel]).any(axis=-1).mean() > 0.3, "no panel drawn top left"
    # brighter than the dim header text can be: anti-aliased strokes (OpenCV 4.6's thinner) seldom reach 255
    assert (out[panel] >= max(DIM_TEXT_RGB) + 20).all(axis=-1).sum() > 50, "no white text in the panel"
    assert (out[h // 2:] == frame[h // 2:]).all(), "drew outside the panel without an active event"
    long, short = bar_lengths(out)
    assert long == pytest.approx(2 * short, rel=0.05)


def test_render_text_scales_with_frame_height():
    small = render(grey(480, 640), prediction())
    large = render(grey(1080, 1920), prediction())
    white_small = (small >= 240).all(axis=-1).sum()
    white_large = (large >= 240).all(axis=-1).sum()
    assert white_large > 3 * white_small  # ~2.25x in each direction
    assert bar_lengths(large)[0] == pytest.approx(2.25 * bar_lengths(small)[0], rel=0.05)


def test_banner_only_while_events_are_active():
    frame = grey()
    quiet = render(frame, prediction(frame))
    alarm = render(frame, prediction(frame, active=("fall",)))
    bottom = slice(420, 480)
    assert not colour_mask(quiet, BANNER_RGB).any()
    assert colour_mask(alarm[bottom], BANNER_RGB).mean() > 0.5
    assert not colour_mask(alarm[:240], BANNER_RGB).any()
    assert (alarm[bottom] <= 40).all(axis=-1).any(), "no dark banner text"


def test_render_handles_many_labels_long_labels_and_tiny_frames():
    scores = [("passing American football (not in game) " * 3, 1.0)] + [(f"l{i}", 0.0) for i in range(9)]
    out = render(grey(), prediction(scores=scores, active=("a", "b")), top=10)
    assert out.shape == (480, 640, 3)
    assert render(grey(24, 32), prediction()).shape == (24, 32, 3)


def test_render_layer_is_transparent_outside_panel_and_banner():
    layer = render_layer((360, 480), prediction(active=("fall",)))
    assert layer.shape == (360, 480, 4)
    alpha = layer[..., 3]
    assert set(np.unique(alpha)) == {0, PANEL_ALPHA, 255}
    assert (alpha[150:300] == 0).all()  # between the panel and the banner
    assert (alpha[-10:] == 255).all() and colour_mask(layer[-10:], BANNER_RGB).any()
    long, short = bar_lengths(layer)
    assert long == pytest.approx(2 * short, rel=0.05)
    assert (alpha[colour_mask(layer, BAR_RGB)] == 255).all()


# --------------------------------------------------------------------------- fbdev


def fake_fb(tmp_path: Path, w: int, h: int, bpp: int, stride: int | None = None) -> tuple[Path, Path]:
    sysfs = tmp_path / "sys" / "fb0"
    sysfs.mkdir(parents=True)
    (sysfs / "virtual_size").write_text(f"{w},{h}\n")
    (sysfs / "bits_per_pixel").write_text(f"{bpp}\n")
    if stride is not None:
        (sysfs / "stride").write_text(f"{stride}\n")
    device = tmp_path / "fb0"
    device.write_bytes(bytes(h * (stride or w * bpp // 8)))
    return device, sysfs


def decode(raw: bytes, w: int, h: int, bpp: int, stride: int) -> np.ndarray:
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride)[:, :w * bpp // 8]
    if bpp == 32:  # B, G, R, X
        return rows.reshape(h, w, 4)[..., 2::-1].copy()
    v = rows.reshape(h, w, 2).view("<u2")[..., 0].astype(np.uint16)
    r, g, b = v >> 11, (v >> 5) & 0x3F, v & 0x1F
    return np.stack([(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("bpp,tol", [(32, 0), (16, 8)])
@pytest.mark.parametrize("padding", [0, 32])
def test_fbdev_writes_the_frame_in_the_framebuffer_format(tmp_path, bpp, tol, padding):
    w, h = 64, 48
    stride = w * bpp // 8 + padding
    device, sysfs = fake_fb(tmp_path, w, h, bpp, stride if padding else None)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    fb = FbdevDisplay(device, sysfs)
    fb.open()
    assert fb.geometry.stride == stride
    fb.show(image, now=0.0)
    raw = device.read_bytes()
    assert len(raw) == h * stride  # written in place at offset 0, nothing appended
    got = decode(raw, w, h, bpp, stride)
    assert np.abs(got.astype(int) - image.astype(int)).max() <= tol
    if padding:
        pad = np.frombuffer(raw, np.uint8).reshape(h, stride)[:, w * bpp // 8:]
        assert not pad.any()
    fb.close()
    assert not any(device.read_bytes()), "the screen was not blanked on close"
    fb.close()  # idempotent


@pytest.mark.parametrize("bpp", [16, 32])
def test_fbdev_letterboxes_keeping_aspect(tmp_path, bpp):
    w, h = 64, 48
    device, sysfs = fake_fb(tmp_path, w, h, bpp, w * bpp // 8)
    fb = FbdevDisplay(device, sysfs, blank_on_close=False)
    fb.open()
    colour = np.array((200, 40, 120), np.uint8)
    wide = np.broadcast_to(colour, (24, 64, 3)).copy()  # 8:3 on 4:3: bars above and below
    fb.show(wide, 0.0)
    got = decode(device.read_bytes(), w, h, bpp, w * bpp // 8).astype(int)
    assert not got[:12].any() and not got[36:].any()
    assert np.abs(got[12:36] - colour).max() <= 8
    tall = np.broadcast_to(colour, (48, 16, 3)).copy()  # 1:3: bars left and right, old bars cleared
    fb.show(tall, 1.0)
    got = decode(device.read_bytes(), w, h, bpp, w * bpp // 8).astype(int)
    assert not got[:, :24].any() and not got[:, 40:].any()
    assert np.abs(got[:, 24:40] - colour).max() <= 8
    fb.close()
    assert any(device.read_bytes()), "blank_on_close=False still blanked"


def test_fb_geometry_without_stride_and_errors(tmp_path):
    device, sysfs = fake_fb(tmp_path, 64, 48, 16)
    g = read_fb_geometry(sysfs)
    assert (g.width, g.height, g.bpp, g.stride) == (64, 48, 16, 128)
    (sysfs / "bits_per_pixel").write_text("24\n")
    with pytest.raises(Exception, match="24 bits per pixel"):
        read_fb_geometry(sysfs)
    with pytest.raises(Exception, match="geometry"):
        read_fb_geometry(tmp_path / "nothing")


def test_letterbox_rect():
    assert letterbox_rect((480, 640), (1080, 1920)) == (240, 0, 1440, 1080)
    assert letterbox_rect((1080, 1920), (480, 640)) == (0, 60, 640, 360)
    assert letterbox_rect((48, 64), (48, 64)) == (0, 0, 64, 48)


def test_fbdev_write_error_is_raised(tmp_path):
    device, sysfs = fake_fb(tmp_path, 8, 8, 32)
    fb = FbdevDisplay(device, sysfs)
    fb.open()
    os.close(fb._fd)  # the device vanished under us
    with pytest.raises(OSError):
        fb.show(grey(8, 8), 0.0)
    fb._fd = None
    fb.close()


# --------------------------------------------------------------------------- snapshot


def test_snapshot_atomic_and_paced_by_the_clock(tmp_path):
    clock = FakeClock()
    path = tmp_path / "snaps" / "snap.jpg"
    sink = OverlaySink(cfg(display="snapshot", snapshot_path=str(path), snapshot_every=5), SinkContext(labels=[]),
                       clock=clock)
    sink.start()
    frame = grey(120, 160)
    sink.emit(prediction(frame))
    assert path.is_file()
    img = cv2.imread(str(path))
    assert img.shape == (120, 160, 3)
    first = path.stat().st_ino, path.read_bytes()
    clock.t += 4.9
    sink.emit(prediction(frame, active=("fall",)))
    assert (path.stat().st_ino, path.read_bytes()) == first, "rewritten before snapshot_every"
    clock.t += 0.1
    sink.emit(prediction(frame, active=("fall",)))
    assert path.stat().st_ino != first[0], "not replaced by a new file"
    bottom = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)[-3:, 40:].reshape(-1, 3).mean(axis=0)
    assert np.abs(bottom - BANNER_RGB).max() < 40, "the new snapshot does not show the banner"
    assert sorted(p.name for p in path.parent.iterdir()) == ["snap.jpg"], "temp files left"
    assert sink.status()["frames_shown"] == 2
    sink.close()
    sink.close()


def test_snapshot_relative_path_is_under_the_state_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    display, _ = pick_display(cfg(display="snapshot", snapshot_path="sub/s.jpg"), state_path=SinkContext.state_path)
    assert isinstance(display, SnapshotDisplay) and display.path == tmp_path / "sub" / "s.jpg"


def test_snapshot_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    display = SnapshotDisplay(tmp_path / "s.jpg")
    display.open()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        display.show(grey(8, 8), 0.0)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- auto, drm


def test_auto_picks_fbdev_when_the_framebuffer_is_writable(tmp_path):
    device, sysfs = fake_fb(tmp_path, 64, 48, 32)
    display, why = pick_display(cfg(fb_device=str(device)), camera=lambda: None, sysfs_dir=sysfs)
    assert isinstance(display, FbdevDisplay) and "writable" in why and "no picamera2 camera" in why
    display.close()


def test_auto_picks_snapshot_when_there_is_no_framebuffer(tmp_path):
    display, why = pick_display(cfg(fb_device=str(tmp_path / "fb9"), snapshot_path=str(tmp_path / "s.jpg")))
    assert isinstance(display, SnapshotDisplay) and "not found" in why


def test_auto_falls_through_when_fbdev_fails_to_open(tmp_path):
    device, _ = fake_fb(tmp_path, 64, 48, 32)  # but no sysfs where we look
    display, why = pick_display(cfg(fb_device=str(device), snapshot_path=str(tmp_path / "s.jpg")),
                                sysfs_dir=tmp_path / "missing")
    assert isinstance(display, SnapshotDisplay) and "fbdev failed" in why


class FakeCamera:
    """The slice of picamera2.Picamera2 the drm display uses."""

    def __init__(self, fail_start: bool = False) -> None:
        self.calls: list = []
        self.overlays: list = []
        self.fail_start = fail_start
        self.camera_config = {"display": "main", "main": {"size": (1280, 720)}, "buffer_count": 4}

    def stop_preview(self):
        self.calls.append("stop_preview")

    def start_preview(self, preview=None, **kw):
        if self.fail_start:
            raise RuntimeError("Failed to reserve DRM plane")
        self.calls.append(("start_preview", preview, kw))

    def set_overlay(self, overlay):
        self.overlays.append(overlay)


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Preview = types.SimpleNamespace(DRM="DRM", NULL="NULL")
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return module


def test_auto_picks_drm_when_a_camera_is_open(tmp_path, fake_picamera2):
    cam = FakeCamera()
    device, sysfs = fake_fb(tmp_path, 1920, 1080, 32)
    display, why = pick_display(cfg(fb_device=str(device)), camera=lambda: cam, sysfs_dir=sysfs)
    assert isinstance(display, DrmDisplay) and "camera" in why
    assert cam.calls == ["stop_preview", ("start_preview", "DRM", {"x": 0, "y": 0, "width": 1920, "height": 1080})]


def test_auto_falls_through_when_drm_fails(tmp_path, fake_picamera2):
    device, sysfs = fake_fb(tmp_path, 64, 48, 32)
    broken = FakeCamera(fail_start=True)
    display, why = pick_display(cfg(fb_device=str(device)), camera=lambda: broken, sysfs_dir=sysfs)
    assert isinstance(display, FbdevDisplay) and "drm failed" in why
    display.close()


def test_drm_without_a_camera_is_an_error_and_the_sink_does_nothing(tmp_path):
    sink = OverlaySink(cfg(display="drm"), SinkContext(labels=[]))
    with pytest.raises(Exception, match="camera"):
        sink.start()
    sink.emit(prediction(grey()))
    assert sink.status()["frames_shown"] == 0
    sink.close()


def test_drm_sink_sets_a_capped_rgba_overlay_and_restores_on_close(tmp_path, fake_picamera2):
    cam = FakeCamera()
    ctx = SinkContext(labels=[], camera=lambda: cam)
    clock = FakeClock()
    sink = OverlaySink(cfg(display="drm", max_fps=5), ctx, clock=clock, fb_sysfs=str(tmp_path / "no-fb"))
    sink.start()
    sink.emit(prediction(grey(720, 1280), active=("fall",)))
    clock.t += 0.1  # under 1/max_fps: not due
    sink.emit(prediction(grey(720, 1280)))
    assert len(cam.overlays) == 1
    overlay = cam.overlays[0]
    assert overlay.shape == (540, 960, 4)  # the display stream's 16:9, capped at 960 wide
    assert overlay[200:400, 400:800, 3].max() == 0
    other = FakeCamera()  # the source reopened the camera: the preview follows it
    ctx.camera = lambda: other
    clock.t += 0.2
    sink.emit(prediction(None))  # a layer needs no frame
    assert len(other.overlays) == 1 and other.calls[-1][:2] == ("start_preview", "DRM")
    sink.close()
    assert other.overlays[-1] is None and other.calls[-2:] == ["stop_preview", ("start_preview", None, {})]


# --------------------------------------------------------------------------- the sink


def test_sink_renders_only_when_the_display_is_due():
    clock = FakeClock()
    shown = RecordingDisplay(interval=0.1)
    sink = OverlaySink(cfg(), SinkContext(labels=[]), display=shown, clock=clock)
    sink.start()
    assert shown.opened
    for _ in range(5):  # a burst of predictions within 0.1 s
        sink.emit(prediction(grey()))
        clock.t += 0.02
    assert len(shown.images) == 1
    clock.t += 0.1
    sink.emit(prediction(None))  # no frame: nothing to draw on
    assert len(shown.images) == 1 and sink.status()["no_frame"] == 1
    sink.emit(prediction(grey()))
    assert len(shown.images) == 2
    sink.close()
    assert shown.closed
    sink.emit(prediction(grey()))
    assert len(shown.images) == 2


def test_null_display_is_never_due():
    assert not NullDisplay().due(0.0)


def test_end_to_end_through_the_registry_with_a_recording_display(tmp_path):
    runner = build(cfg(top=2), SinkContext(labels=["walking", "running"]))
    assert isinstance(runner.sink, OverlaySink)
    shown = runner.sink.display = RecordingDisplay()
    runner.start()
    frame = grey()
    runner.submit(prediction(frame, active=("fall",)))
    assert runner.drain(5.0)
    runner.close()
    health = runner.health()
    assert health["errors"] == 0 and health["frames_shown"] == 1 and health["display"] == "recording"
    (image,) = shown.images
    assert colour_mask(image, BANNER_RGB).any() and len(bar_lengths(image)) == 2


def test_end_to_end_snapshot_through_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    runner = build(cfg(display="snapshot", snapshot_path="snapshot.jpg"), SinkContext(labels=[]))
    runner.start()
    runner.submit(prediction(grey(240, 320)))
    assert runner.drain(5.0)
    runner.close()
    assert runner.health()["errors"] == 0
    assert cv2.imread(str(tmp_path / "snapshot.jpg")).shape == (240, 320, 3)
    assert runner.name.startswith("overlay:snapshot:")
