"""PicameraSource and camera_present() against a fake picamera2 module (the real one: test marked hardware)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from edge.capture import picamera
from edge.capture import open_source
from edge.capture.base import SourceError
from edge.capture.picamera import PicameraSource, camera_present
from edge.errors import EdgeError


class FakeRequest:
    def __init__(self, camera: FakePicamera2, array: np.ndarray, metadata: dict) -> None:
        self.camera = camera
        self.array = array
        self.metadata = metadata
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        assert name == "main"
        assert not self.released, "make_array after release"
        return self.array.copy()

    def get_metadata(self) -> dict:
        return dict(self.metadata)

    def release(self) -> None:
        self.released = True


class FakePicamera2:
    """Enough of picamera2.Picamera2: frames are (bgr_array, metadata) pairs, or exceptions to raise."""

    cameras: list[dict] = [{"Model": "imx708", "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a"}]
    frames: list = []
    instances: list[FakePicamera2] = []
    init_error: Exception | None = None

    def __init__(self, camera_num: int = 0) -> None:
        if FakePicamera2.init_error is not None:
            raise FakePicamera2.init_error
        self.camera_num = camera_num
        self.calls: list = []
        self.requests: list[FakeRequest] = []
        self.waits: list = []
        self.config = None
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict]:
        return FakePicamera2.cameras

    def create_video_configuration(self, main=None, controls=None, **kwargs) -> dict:
        self.calls.append(("create", main, controls))
        return {"main": dict(main or {}), "controls": dict(controls or {})}

    def configure(self, config) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")

    def capture_request(self, wait=None):
        self.waits.append(wait)
        if not FakePicamera2.frames:
            raise TimeoutError("no frame")
        item = FakePicamera2.frames.pop(0)
        if isinstance(item, Exception):
            raise item
        array, metadata = item
        self.requests.append(FakeRequest(self, array, metadata))
        return self.requests[-1]

    def capture_array(self, name: str = "main") -> np.ndarray:
        request = self.capture_request()
        try:
            return request.make_array(name)
        finally:
            request.release()

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


def bgr(b: int, g: int, r: int, h: int = 4, w: int = 6) -> np.ndarray:
    """A frame as picamera2's RGB888 has it in memory: B, G, R."""
    frame = np.empty((h, w, 3), np.uint8)
    frame[...] = (b, g, r)
    return frame


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(FakePicamera2, "cameras", [{"Model": "imx708", "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a"}])
    monkeypatch.setattr(FakePicamera2, "frames", [])
    monkeypatch.setattr(FakePicamera2, "instances", [])
    monkeypatch.setattr(FakePicamera2, "init_error", None)
    return FakePicamera2


@pytest.fixture
def no_picamera2(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # `import picamera2` raises ImportError


# --------------------------------------------------------------------------- opening


def test_open_configures_rgb888_video_at_the_requested_size_and_frame_duration(fake_picamera2):
    src = PicameraSource(width=640, height=480, fps=15)
    src.open()
    cam = src.camera
    assert isinstance(cam, FakePicamera2)
    assert cam.calls == [("create", {"size": (640, 480), "format": "RGB888"},
                          {"FrameDurationLimits": (66667, 66667)}), "configure", "start"]
    assert (src.name, src.fps, src.realtime) == ("picamera2", 15.0, True)
    src.close()


@pytest.mark.parametrize("fps, duration_us", [(5, 200000), (15, 66667), (30, 33333), (120, 8333)])
def test_frame_duration_is_one_frame_period_in_microseconds(fps, duration_us):
    assert PicameraSource(fps=fps).frame_duration_us == duration_us


def test_a_camera_that_cannot_be_opened_is_a_source_error(fake_picamera2):
    fake_picamera2.init_error = RuntimeError("Camera __init__ sequence did not complete.")
    with pytest.raises(SourceError, match="could not be opened"):
        PicameraSource().open()


def test_picamera2_missing_is_an_edge_error_with_the_fix(no_picamera2):
    with pytest.raises(EdgeError, match="python3-picamera2"):
        PicameraSource().open()


def test_open_source_builds_a_picamera_source_without_opening_it(fake_picamera2):
    src = open_source("picamera2", None, width=320, height=240, fps=10)
    assert isinstance(src, PicameraSource)
    assert (src.width, src.height, src.fps, src.camera) == (320, 240, 10.0, None)
    assert fake_picamera2.instances == []


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("memory, rgb", [
    ((255, 0, 0), (0, 0, 255)),  # pure blue in BGR memory comes out as RGB blue
    ((0, 0, 255), (255, 0, 0)),  # red
    ((0, 255, 0), (0, 255, 0)),  # green stays green
    ((10, 20, 30), (30, 20, 10)),
])
def test_read_fixes_the_channel_order_once(fake_picamera2, memory, rgb):
    fake_picamera2.frames = [(bgr(*memory), {"SensorTimestamp": 1_000_000_000})]
    with PicameraSource(width=6, height=4) as src:
        frame = src.read()
    assert frame.pixels.shape == (4, 6, 3)
    assert frame.pixels.dtype == np.uint8
    assert frame.pixels.flags["C_CONTIGUOUS"]
    assert tuple(frame.pixels[0, 0]) == rgb
    assert (frame.pixels == np.asarray(rgb, np.uint8)).all()


def test_a_frame_bigger_than_asked_is_scaled_to_fit_keeping_colour_and_aspect(fake_picamera2):
    # a camera that ignored the size asked (or picamera2 aligned it up): still at most width x height
    fake_picamera2.frames = [(bgr(0, 0, 255, h=1080, w=1920), {"SensorTimestamp": 1})]
    with PicameraSource(width=640, height=480) as src:
        frame = src.read()
    assert frame.pixels.shape == (360, 640, 3)
    assert tuple(frame.pixels[100, 100]) == (255, 0, 0)  # red: channel order still fixed once


def test_read_copies_the_frame_and_releases_the_request(fake_picamera2):
    buffer = bgr(255, 0, 0)
    fake_picamera2.frames = [(buffer, {"SensorTimestamp": 5})]
    with PicameraSource() as src:
        frame = src.read()
        cam = src.camera
    assert [r.released for r in cam.requests] == [True]
    buffer[...] = 0  # libcamera reuses the buffer
    assert tuple(frame.pixels[0, 0]) == (0, 0, 255)
    assert cam.waits == [src.timeout]  # a hung camera raises instead of blocking forever


def test_timestamps_are_sensor_time_relative_to_the_first_frame(fake_picamera2):
    base = 123_456_789_000_000
    fake_picamera2.frames = [(bgr(0, 0, 0), {"SensorTimestamp": base + k * 66_666_667}) for k in range(4)]
    with PicameraSource(fps=15) as src:
        frames = [src.read() for _ in range(4)]
    assert [f.seq for f in frames] == [0, 1, 2, 3]
    assert [f.t for f in frames] == pytest.approx([0.0, 0.0666667, 0.1333333, 0.2], abs=1e-6)


def test_without_sensor_timestamp_frames_are_stamped_on_arrival(fake_picamera2, monkeypatch):
    clock = iter([100.0, 100.25, 100.5])
    monkeypatch.setattr(picamera.time, "monotonic", lambda: next(clock))
    fake_picamera2.frames = [(bgr(0, 0, 0), {}) for _ in range(3)]
    with PicameraSource() as src:
        ts = [src.read().t for _ in range(3)]
    assert ts == [0.0, 0.25, 0.5]


def test_time_keeps_running_across_a_reopen_so_a_gap_shows(fake_picamera2):
    s = 1_000_000_000
    fake_picamera2.frames = [(bgr(0, 0, 0), {"SensorTimestamp": 10 * s}), (bgr(0, 0, 0), {"SensorTimestamp": 13 * s})]
    src = PicameraSource()
    src.open()
    assert src.read().t == 0.0
    src.close()
    src.open()
    assert src.read().t == pytest.approx(3.0)
    src.close()


@pytest.mark.parametrize("error", [RuntimeError("Camera frontend has timed out!"), TimeoutError(),
                                   OSError(19, "No such device")])
def test_a_raising_capture_is_a_source_error(fake_picamera2, error):
    fake_picamera2.frames = [error]
    with PicameraSource() as src:
        with pytest.raises(SourceError, match="stopped delivering"):
            src.read()


def test_a_failing_make_array_is_a_source_error_and_the_request_is_still_released(fake_picamera2, monkeypatch):
    def broken(self, name):
        raise RuntimeError("buffer gone")

    monkeypatch.setattr(FakeRequest, "make_array", broken)
    fake_picamera2.frames = [(bgr(0, 0, 0), {})]
    with PicameraSource() as src:
        with pytest.raises(SourceError, match="buffer gone"):
            src.read()
        assert [r.released for r in src.camera.requests] == [True]


def test_reading_a_closed_source_is_a_source_error(fake_picamera2):
    with pytest.raises(SourceError, match="not open"):
        PicameraSource().read()


# --------------------------------------------------------------------------- closing


def test_close_stops_then_closes_once_and_is_idempotent(fake_picamera2):
    src = PicameraSource()
    src.open()
    cam = src.camera
    src.close()
    src.close()
    assert cam.calls[-2:] == ["stop", "close"]
    assert cam.calls.count("close") == 1
    assert src.camera is None
    PicameraSource().close()  # never opened


def test_close_survives_a_camera_that_fails_to_stop(fake_picamera2, monkeypatch):
    def gone(self):
        raise RuntimeError("device vanished")

    monkeypatch.setattr(FakePicamera2, "stop", gone)
    src = PicameraSource()
    src.open()
    cam = src.camera
    src.close()
    assert cam.calls[-1] == "close"
    assert src.camera is None


def test_a_failed_start_releases_the_camera(fake_picamera2, monkeypatch):
    def busy(self):
        raise RuntimeError("Failed to start camera")

    monkeypatch.setattr(FakePicamera2, "start", busy)
    src = PicameraSource()
    with pytest.raises(SourceError, match="could not be started"):
        src.open()
    assert fake_picamera2.instances[0].calls[-1] == "close"
    assert src.camera is None


# --------------------------------------------------------------------------- camera_present


def test_camera_present_when_libcamera_lists_a_camera(fake_picamera2):
    assert camera_present() == (True, "imx708")


@pytest.mark.parametrize("cameras, why", [
    ([], "lists no camera"),
    ([{"Model": "uvcvideo", "Id": "/base/axi/pcie@120000/rp1/usb@200000-1:1.0-046d:0825"}], "only USB"),
])
def test_camera_absent(fake_picamera2, cameras, why):
    fake_picamera2.cameras = cameras
    present, reason = camera_present()
    assert present is False
    assert why in reason


def test_camera_present_is_false_when_picamera2_does_not_import(no_picamera2):
    present, why = camera_present()
    assert present is False
    assert "picamera2 not importable" in why


def test_camera_present_never_raises(fake_picamera2, monkeypatch):
    def broken():
        raise RuntimeError("libcamera exploded")

    monkeypatch.setattr(FakePicamera2, "global_camera_info", staticmethod(broken))
    assert camera_present() == (False, "libcamera could not list cameras: libcamera exploded")


def test_auto_source_picks_the_camera_when_present(fake_picamera2):
    from edge.capture.auto import AutoSource

    src = open_source("auto", None, width=320, height=240, fps=15)
    assert isinstance(src, AutoSource)  # the probe happens at open, so a camera that appears later is found
    src.open()
    assert isinstance(src.inner, PicameraSource) and src.name == "picamera2"
    assert (src.inner.width, src.inner.height) == (320, 240)
    src.close()
    assert src.inner is None


def test_auto_source_without_picamera2_waits_or_falls_back(no_picamera2):
    src = open_source("auto", None)
    try:
        src.open()
    except SourceError as err:  # no camera at all: waited for (the supervisor retries), never fatal
        assert "picamera2 (picamera2 not importable" in str(err)
    else:
        assert src.name.startswith("v4l2:")
        src.close()


# --------------------------------------------------------------------------- through the daemon


def test_daemon_sees_red_when_the_camera_delivers_red(fake_picamera2, tiny_config, recorder):
    """Channel order is fixed in the source and nowhere else: BGR-in-memory red reaches the model as red."""
    from edge.daemon import Daemon

    fake_picamera2.frames = [(bgr(0, 0, 255 - k % 2, 16, 16), {"SensorTimestamp": 10**9 + k * 200_000_000})
                             for k in range(8)]
    cfg = tiny_config(source={"kind": "picamera2", "width": 16, "height": 16, "fps": 5})
    daemon = Daemon(cfg)
    daemon.start()
    try:
        assert recorder.sink.wait_for(lambda ps: len(ps) >= 1, timeout=10)  # a burst: overrun keeps the newest
    finally:
        daemon.shutdown()
    assert isinstance(daemon.source, PicameraSource)
    assert {p.top[0].label for p in recorder.sink.predictions} == {"red"}
    r, g, b = recorder.sink.predictions[0].frame.pixels[0, 0]
    assert r >= 254 and g == 0 and b == 0


# --------------------------------------------------------------------------- the real camera


@pytest.mark.hardware
def test_real_camera_delivers_rgb_frames():
    present, why = camera_present()
    if not present:
        pytest.skip(why)
    with PicameraSource(width=640, height=480, fps=15) as src:
        frames = [src.read() for _ in range(10)]
    assert all(f.pixels.shape == (480, 640, 3) and f.pixels.dtype == np.uint8 for f in frames)
    assert all(f.pixels.flags["C_CONTIGUOUS"] for f in frames)
    ts = [f.t for f in frames]
    assert ts == sorted(ts) and ts[0] == 0.0
    assert 0.3 < ts[-1] < 3.0  # about 9 frame periods at 15 fps
