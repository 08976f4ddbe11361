"""source.kind auto: probes in order, names what it tried, and picks up a camera that appears later."""

from __future__ import annotations

import pytest

import numpy as np

from edge.capture.auto import SOC_V4L2, AutoSource, v4l2_devices
from edge.capture.base import Frame, SourceError


class StubCamera:
    realtime = True
    can_freeze = True

    def __init__(self, name: str, fps: float) -> None:
        self.name, self.fps = name, fps
        self.opens = self.closes = self.reads = 0

    def open(self) -> None:
        self.opens += 1

    def read(self) -> Frame:
        self.reads += 1
        return Frame(np.zeros((4, 4, 3), np.uint8), self.reads / self.fps, self.reads)

    def close(self) -> None:
        self.closes += 1


class Camera:
    """A probe for a camera that is not plugged in until ``plug()``."""

    def __init__(self, name: str = "fake-cam") -> None:
        self.present = False
        self.name = name
        self.built: list[FakeSource] = []

    def plug(self) -> None:
        self.present = True

    def __call__(self, width: int, height: int, fps: float):
        if not self.present:
            return f"{self.name} (not plugged in)"
        src = StubCamera(self.name, fps)
        self.built.append(src)
        return src


def test_nothing_present_is_a_source_error_naming_every_probe():
    auto = AutoSource(probes=[lambda w, h, f: "picamera2 (no camera)", lambda w, h, f: "v4l2 (no /dev/video*)"])
    with pytest.raises(SourceError) as err:
        auto.open()
    assert "tried: picamera2 (no camera); v4l2 (no /dev/video*)" in str(err.value)
    assert auto.tried == "picamera2 (no camera); v4l2 (no /dev/video*)"
    with pytest.raises(SourceError):
        auto.read()


def test_a_camera_that_appears_is_opened_and_read():
    cam = Camera()
    auto = AutoSource(fps=10, probes=[lambda w, h, f: "picamera2 (none)", cam])
    with pytest.raises(SourceError):
        auto.open()
    cam.plug()
    auto.open()
    assert auto.name == "fake-cam" and auto.tried == ""
    assert auto.read().t == pytest.approx(0.1)
    auto.close()
    assert cam.built[0].closes == 1


def test_the_first_probe_that_finds_one_wins():
    first, second = Camera("first"), Camera("second")
    first.plug()
    second.plug()
    with AutoSource(probes=[first, second]) as auto:
        assert auto.name == "first"
    assert second.built == []


def test_reopen_probes_again():
    cam = Camera()
    cam.plug()
    auto = AutoSource(probes=[cam])
    auto.open()
    cam.present = False  # unplugged
    with pytest.raises(SourceError):
        auto.open()
    assert auto.inner is None and cam.built[0].closes == 1


def test_v4l2_devices_in_number_order_with_their_names(tmp_path):
    dev, sysfs = tmp_path / "dev", tmp_path / "sys"
    for n, name in ((10, "bcm2835-codec-decode"), (2, "USB Camera"), (0, "")):
        (dev / f"video{n}").parent.mkdir(parents=True, exist_ok=True)
        (dev / f"video{n}").touch()
        if name:
            (sysfs / f"video{n}").mkdir(parents=True)
            (sysfs / f"video{n}" / "name").write_text(name + "\n")
    found = v4l2_devices(str(dev), str(sysfs))
    assert found == [(str(dev / "video0"), ""), (str(dev / "video2"), "USB Camera"),
                     (str(dev / "video10"), "bcm2835-codec-decode")]
    assert [p for p, n in found if not n.startswith(SOC_V4L2)] == [str(dev / "video0"), str(dev / "video2")]
