"""OpenCVSource pieces that need no camera: device naming and file timestamps."""

import os

import pytest

from edge.capture.base import describe_spec
from edge.capture.opencv import OpenCVSource, device_index
from edge.errors import EdgeError


@pytest.mark.parametrize("spec, index", [("0", 0), ("2", 2), ("/dev/video0", 0), ("/dev/video11", 11)])
def test_device_index(spec, index):
    assert device_index(spec) == index


def test_device_index_follows_a_udev_link(tmp_path):
    link = tmp_path / "usb-Logitech-video-index0"
    os.symlink("/dev/video4", link)
    assert device_index(str(link)) == 4


def test_device_index_rejects_a_non_device(tmp_path):
    with pytest.raises(EdgeError, match="not a V4L2 device"):
        device_index(str(tmp_path / "camera"))


@pytest.mark.parametrize("spec, kind", [
    (None, "auto"), ("auto", "auto"), ("picamera2", "picamera2"), ("rtsp://cam.local/stream", "rtsp"),
    ("0", "v4l2"), ("/dev/video1", "v4l2"), ("clip.mp4", "file"), ("/home/pi/incident.mkv", "file"),
])
def test_source_kind_from_the_command_line(spec, kind):
    assert describe_spec(spec) == kind


def test_file_timestamps_come_from_the_container(make_video, tmp_path):
    path = make_video(tmp_path / "red.mp4", (255, 0, 0), seconds=2.0, fps=15)
    with OpenCVSource.file(str(path), paced=False) as src:
        ts = [f.t for f in iter(src.read, None)]
    assert len(ts) == 30
    assert ts[:3] == pytest.approx([0.0, 1 / 15, 2 / 15], abs=1e-3)


def test_missing_and_non_video_files_are_one_line_errors(tmp_path):
    with pytest.raises(EdgeError, match="does not exist"):
        OpenCVSource.file(str(tmp_path / "nope.mp4")).open()
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(EdgeError, match="could not be opened"):
        OpenCVSource.file(str(text)).open()
