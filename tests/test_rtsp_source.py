"""OpenCVSource against a real RTSP server on 127.0.0.1: frames, a server that dies and comes back,
a server that freezes, and a password that never shows. Skips when GStreamer's RTSP server is missing."""

from __future__ import annotations

import time

import pytest
from rtsp import RtspServer, shared_long_clip

from edge.capture import SourceError
from edge.capture.opencv import OpenCVSource
from edge.capture.pyav import PyAVSource


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return shared_long_clip(tmp_path_factory.mktemp("rtsp"))


@pytest.fixture(params=[PyAVSource, OpenCVSource], ids=["pyav", "opencv"])
def stream(request):
    """``stream(url, **kw)``: an unopened RTSP source through each decoder (PyAV, and OpenCV where PyAV is missing)."""
    if request.param is PyAVSource:
        pytest.importorskip("av")
    return request.param.stream


@pytest.fixture
def server(clip):
    srv = RtspServer(clip).start()
    yield srv
    srv.kill()


def read_n(src, n: int) -> list:
    return [src.read() for _ in range(n)]


def test_frames_arrive_scaled_and_stamped(server, stream):
    src = stream(server.url, width=128, height=128, timeout=3.0)
    with src:
        frames = read_n(src, 10)
    assert all(f.pixels.shape == (128, 128, 3) for f in frames)  # 172x172 fitted inside 128x128
    ts = [f.t for f in frames]
    assert ts == sorted(ts)


def test_a_killed_server_is_a_source_error_and_the_source_reopens_when_it_is_back(server, stream):
    src = stream(server.url, timeout=2.0)
    src.open()
    read_n(src, 5)
    server.kill()
    with pytest.raises(SourceError):
        for _ in range(500):  # what FFmpeg had buffered, then the error
            src.read()
    with pytest.raises(SourceError, match="could not be opened"):
        src.open()
    server.start()  # back, same port
    src.open()
    assert src.read() is not None
    src.close()


def test_a_frozen_server_ends_a_read_within_a_few_timeouts(server, stream):
    src = stream(server.url, timeout=1.0)
    src.open()
    read_n(src, 5)
    server.freeze()
    try:
        began = time.monotonic()
        with pytest.raises(SourceError):
            for _ in range(500):
                src.read()
        assert time.monotonic() - began < 15  # FFmpeg's own read timeout (the supervisor acts sooner)
    finally:
        server.thaw()
        src.close()


def test_a_password_never_reaches_the_name_or_the_errors(server, stream, caplog):
    url = server.url.replace("rtsp://", "rtsp://admin:s3cret@")
    src = stream(url, timeout=2.0)
    assert "s3cret" not in src.name
    with src:
        src.read()
    server.kill()
    with pytest.raises(SourceError) as err:
        for _ in range(500):
            src.read()
    assert "s3cret" not in str(err.value) and "s3cret" not in caplog.text
