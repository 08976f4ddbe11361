"""OpenCVSource pieces that need no camera: device naming and file timestamps."""

import os

import pytest
from conftest import write_noise_video

from edge.capture import describe_spec
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


@pytest.mark.parametrize("size, limit, delivered", [
    ((1920, 1080), (640, 480), (640, 360)),  # 16:9 fits by width
    ((640, 480), (640, 480), (640, 480)),  # already fits: untouched
    ((320, 240), (640, 480), (320, 240)),  # never scaled up
    ((480, 640), (640, 480), (360, 480)),  # portrait fits by height
    ((1920, 1080), (0, 0), (1920, 1080)),  # no limit (edge classify)
])
def test_file_frames_are_scaled_to_fit_keeping_the_aspect(make_video, tmp_path, size, limit, delivered):
    path = make_video(tmp_path / "v.mp4", (0, 200, 0), seconds=0.2, fps=10, size=size)
    with OpenCVSource.file(str(path), paced=False, width=limit[0], height=limit[1]) as src:
        frame = src.read()
    assert frame.pixels.shape == (delivered[1], delivered[0], 3)
    assert src.size == delivered
    assert tuple(frame.pixels[delivered[1] // 2, delivered[0] // 2]) == pytest.approx((0, 200, 0), abs=8)  # RGB kept


def test_the_factory_scales_every_opencv_kind(tmp_path):
    from edge.capture import open_source

    for kind, spec in (("file", str(tmp_path / "a.mp4")), ("rtsp", "rtsp://127.0.0.1:1/s"), ("v4l2", "0")):
        src = open_source(kind, spec, width=320, height=240)
        assert (src.width, src.height) == (320, 240), kind


@pytest.mark.parametrize("spec, shown", [
    ("rtsp://admin:s3cret@cam.local:554/stream1", "rtsp://cam.local:554/stream1"),
    ("rtsp://admin@cam.local/s", "rtsp://cam.local/s"),
    ("rtsp://u:p@ss/w@cam/s?x=1", "rtsp://cam/s?x=1"),  # unencoded '@' and '/' in the password
    ("rtsp://cam/s?user=a&password=s3cret&ch=1", "rtsp://cam/s?user=a&password=***&ch=1"),
    ("http://cam/video.mjpg?token=abc#x", "http://cam/video.mjpg?token=***#x"),
    ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
    ("/home/pi/clip.mp4", "/home/pi/clip.mp4"),
])
def test_redact_strips_userinfo_and_secret_query_values(spec, shown):
    from edge.capture.base import redact

    assert redact(spec) == shown


def test_a_stream_is_named_without_its_password_even_when_it_fails(caplog):
    from edge.capture import SourceError, open_source

    src = open_source("rtsp", "rtsp://admin:s3cret@127.0.0.1:9/nothing", timeout=1.0)
    assert src.name == "rtsp:rtsp://127.0.0.1:9/nothing"
    with pytest.raises(SourceError) as err:
        src.open()
    assert "s3cret" not in str(err.value) and "admin" not in str(err.value)
    assert "s3cret" not in caplog.text



def test_a_loop_file_truncated_in_place_is_retried_not_ended(tmp_path):
    from edge.capture.base import SourceError

    path = write_noise_video(tmp_path / "loop.avi")
    src = OpenCVSource.file(str(path), loop=True, paced=False)
    with src:
        ts = [src.read().t for _ in range(5)]
        path.write_bytes(b"")  # truncated in place while being read
        with pytest.raises(SourceError):
            for _ in range(20):
                src.read()
        with pytest.raises(SourceError, match="could not be opened"):  # waited for, not a fatal EdgeError
            src.open()
        write_noise_video(path)  # it comes back
        src.open()
        again = src.read().t
    assert again > ts[-1]  # its time goes on: no jump back to 0


def test_a_file_declares_its_length(make_video, tmp_path):
    path = make_video(tmp_path / "two.mp4", (1, 2, 3), seconds=2.0, fps=15)
    with OpenCVSource.file(str(path), paced=False) as src:
        assert src.duration == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("limit", [(0, 0), (32, 24)])  # unscaled, and scaled (both scratch buffers in use)
def test_frames_handed_out_never_share_the_reused_decode_buffers(tmp_path, limit):
    import cv2
    import numpy as np

    path = tmp_path / "colours.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    colours = [(0, 0, 250), (0, 250, 0), (250, 0, 0)]  # BGR: red, green, blue
    for bgr in colours:
        writer.write(np.full((48, 64, 3), bgr, np.uint8))
    writer.release()
    with OpenCVSource.file(str(path), paced=False, width=limit[0], height=limit[1]) as src:
        frames = [src.read() for _ in colours]
    got = [tuple(int(v) for v in f.pixels[5, 5]) for f in frames]
    for pixel, bgr in zip(got, colours):
        assert pixel == pytest.approx(bgr[::-1], abs=8)  # each frame kept its own colour (RGB)


@pytest.mark.parametrize("name, short", [
    ("file:/home/pi/clip.mp4", "clip.mp4"), ("v4l2:/dev/video0", "video0"), ("v4l2:2", "video2"),
    ("rtsp:rtsp://cam.local:554/stream1", "cam.local:554/stream1"), ("picamera2", "picamera2"), ("fake", "fake"),
])
def test_short_source_names_for_merged_logs(name, short):
    from edge.capture.base import short_name

    assert short_name(name) == short


def test_file_time_never_goes_back_when_the_container_reports_0_for_its_last_frame(shared_videos):
    # OpenCV reads 0.0 ms as the position of this AVI's last frame: that frame must come after the others
    src = OpenCVSource.file(str(shared_videos / "putting_on_eyeliner.avi"), paced=False)
    with src:
        times = [t for t in iter(src._grab, None)]
    assert len(times) == 164
    assert all(b > a for a, b in zip(times, times[1:]))
    assert times[-1] > 6.5
