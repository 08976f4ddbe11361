"""PyAVSource (files and streams for the daemon) behaves as OpenCVSource does: timestamps, scaling,
looping, a file that breaks, one-line errors. The same file through both gives the same frames."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_noise_video

from edge.capture import open_source
from edge.capture.base import SourceError
from edge.capture.opencv import OpenCVSource
from edge.errors import EdgeError

av = pytest.importorskip("av")
from edge.capture.pyav import PyAVSource  # noqa: E402


def test_the_factory_decodes_files_and_streams_with_pyav(tmp_path):
    assert type(open_source("file", str(tmp_path / "a.mp4"))) is PyAVSource
    assert type(open_source("rtsp", "rtsp://127.0.0.1:1/s")) is PyAVSource
    assert type(open_source("v4l2", "0")) is OpenCVSource  # a camera stays on OpenCV's V4L2 backend


def test_timestamps_and_length_come_from_the_container(make_video, tmp_path):
    path = make_video(tmp_path / "red.mp4", (255, 0, 0), seconds=2.0, fps=15)
    with PyAVSource.file(str(path), paced=False) as src:
        frames = list(iter(src.read, None))
        assert src.duration == pytest.approx(2.0, abs=0.1)
    assert len(frames) == 30
    assert [f.t for f in frames[:3]] == pytest.approx([0.0, 1 / 15, 2 / 15], abs=1e-3)
    assert tuple(frames[0].pixels[10, 10]) == pytest.approx((255, 0, 0), abs=8)  # RGB


@pytest.mark.parametrize("size, limit, delivered", [
    ((1920, 1080), (640, 480), (640, 360)),
    ((480, 640), (640, 480), (360, 480)),
    ((320, 240), (640, 480), (320, 240)),
])
def test_frames_are_scaled_to_fit_keeping_the_aspect(make_video, tmp_path, size, limit, delivered):
    path = make_video(tmp_path / "v.mp4", (0, 200, 0), seconds=0.2, fps=10, size=size)
    with PyAVSource.file(str(path), paced=False, width=limit[0], height=limit[1]) as src:
        frame = src.read()
    assert frame.pixels.shape == (delivered[1], delivered[0], 3) and frame.pixels.flags.c_contiguous
    assert tuple(frame.pixels[delivered[1] // 2, delivered[0] // 2]) == pytest.approx((0, 200, 0), abs=8)


def test_the_same_file_gives_the_same_frames_through_both_decoders(tmp_path):
    path = write_noise_video(tmp_path / "n.avi", frames=5)
    with PyAVSource.file(str(path), paced=False) as a, OpenCVSource.file(str(path), paced=False) as b:
        for _ in range(5):
            fa, fb = a.read(), b.read()
            assert fa.t == pytest.approx(fb.t, abs=1e-3)
            diff = np.abs(fa.pixels.astype(int) - fb.pixels.astype(int))
            assert diff.mean() < 3, "the decoders' colour conversions differ by more than rounding"


def test_a_loop_file_plays_again_and_time_goes_on(tmp_path):
    path = write_noise_video(tmp_path / "loop.avi", frames=5)
    with PyAVSource.file(str(path), loop=True, paced=False) as src:
        ts = [src.read().t for _ in range(12)]
    assert ts == sorted(ts) and len(set(ts)) == 12


def test_a_loop_file_truncated_in_place_is_retried_not_ended(tmp_path):
    path = write_noise_video(tmp_path / "loop.avi", frames=10)
    src = PyAVSource.file(str(path), loop=True, paced=False)
    with src:
        last = [src.read().t for _ in range(3)][-1]
        path.write_bytes(b"")
        with pytest.raises(SourceError):
            for _ in range(30):
                src.read()
        with pytest.raises(SourceError, match="does not exist|could not be opened"):
            path.unlink()
            src.open()
        write_noise_video(path)
        src.open()
        assert src.read().t > last


def test_missing_and_non_video_files_are_one_line_errors(tmp_path):
    with pytest.raises(EdgeError, match="does not exist"):
        PyAVSource.file(str(tmp_path / "nope.mp4")).open()
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(EdgeError, match="could not be opened"):
        PyAVSource.file(str(text)).open()


def test_an_unreachable_stream_is_a_source_error_without_the_password():
    src = PyAVSource.stream("rtsp://admin:s3cret@127.0.0.1:9/none", timeout=1.0)
    with pytest.raises(SourceError) as err:
        src.open()
    assert "s3cret" not in str(err.value) and "admin" not in str(err.value)


def test_a_big_mjpeg_source_is_decoded_small_by_the_decoder_itself(tmp_path):
    import cv2

    path = tmp_path / "big.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (2560, 1440))
    for i in range(3):
        w.write(np.full((1440, 2560, 3), (0, 60 * i, 200), np.uint8))
    w.release()
    with PyAVSource.file(str(path), paced=False, width=640, height=480) as src:
        frame = src.read()
        decoded = (src._frame.width, src._frame.height)
    assert decoded == (640, 360)  # 1/4 size out of the JPEG decoder: no 2560x1440 frame was ever made
    assert frame.pixels.shape == (360, 640, 3)
    assert tuple(frame.pixels[180, 320]) == pytest.approx((200, 0, 0), abs=8)


@pytest.mark.parametrize("codec, size, need, halvings", [
    ("mjpeg", (3840, 2160), (640, 360), 2),
    ("mjpeg", (1920, 1080), (640, 360), 1),
    ("mjpeg", (1280, 720), (1280, 720), 0),
    ("mjpeg", (7680, 4320), (160, 90), 3),  # the decoder halves three times at most
    ("h264", (3840, 2160), (640, 360), 0),  # only JPEG decoders can
])
def test_lowres_halvings(codec, size, need, halvings):
    from edge.capture.pyav import _lowres

    assert _lowres(codec, *size, *need) == halvings
