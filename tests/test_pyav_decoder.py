"""PyAVSource's decoder: what it holds in memory, and what FFmpeg may print (nothing: the journal shows our lines only)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_noise_video

av = pytest.importorskip("av")
from edge.capture.pyav import PyAVSource  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = REPO.parent / "shared" / "videos"
OUR_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) edge[.:]")

# Decode every file as the daemon does, with the daemon's logging; PYAV_OLD makes PyAV >= 13 behave as PyAV < 13
# (Debian 12's python3-av 10) does by default: FFmpeg's messages become `libav.*` records in Python's logging.
DECODE_ALL = """
import logging, sys
import av
from edge.cli import setup_logging
from edge.capture.pyav import PyAVSource
from edge.errors import EdgeError
from edge.capture.base import SourceError
setup_logging(verbose=sys.argv[1] == "-v")
if sys.argv[2] == "old":
    av.logging.set_level(av.logging.INFO)
for path in sys.argv[3:]:
    try:
        with PyAVSource.file(path, paced=False, width=640, height=480) as src:
            for _ in range(60):
                if src.read() is None:
                    break
    except (EdgeError, SourceError) as err:
        logging.getLogger("edge.test").error("%s", err)
"""


def _damaged_copies(tmp_path: Path) -> list[Path]:
    good = write_noise_video(tmp_path / "good.avi", frames=12, size=(640, 480))  # yuvj422p: swscale warns on PyAV < 13
    data = good.read_bytes()
    corrupt = bytearray(data)
    for i in range(len(data) // 3, len(data), 997):  # JPEG data damaged all over its second two thirds
        corrupt[i] ^= 0x5A
    (tmp_path / "corrupt.avi").write_bytes(bytes(corrupt))
    (tmp_path / "truncated.avi").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all " * 500)
    return [good, tmp_path / "corrupt.avi", tmp_path / "truncated.avi", tmp_path / "junk.mp4"]


@pytest.mark.parametrize("pyav", ["installed", "old"])
def test_ffmpeg_prints_nothing_past_our_own_log_lines(tmp_path, pyav):
    clips = _damaged_copies(tmp_path)
    if SHARED_VIDEOS.is_dir():
        clips += sorted(p for p in SHARED_VIDEOS.iterdir() if p.suffix in (".mp4", ".mkv", ".avi"))
    for verbose in ("-q", "-v"):
        run = subprocess.run([sys.executable, "-c", DECODE_ALL, verbose, pyav, *map(str, clips)], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert run.returncode == 0, run.stderr[-2000:]
        assert lines, "the decode printed no line of ours at all"
        strangers = [line for line in lines if not OUR_LINE.match(line)]
        assert not strangers, f"lines that are not ours on stderr ({verbose}, PyAV {pyav}): {strangers[:5]}"
        if verbose == "-q":
            assert not [line for line in lines if "libav" in line], "FFmpeg's messages leaked as warnings"
        elif pyav == "old":  # kept for `edge -v`, as our debug lines
            assert any(re.search(r" DEBUG edge\.capture\.pyav: libav\.\w+", line) for line in lines), lines[:20]


def test_decoder_threads_never_hold_a_picture_each(tmp_path):
    """Slice threads share one picture; frame threads would each hold a full-size one (+6.6 MB at 1080p)."""
    path = write_noise_video(tmp_path / "n.avi", frames=3)
    with PyAVSource.file(str(path), paced=False) as src:
        assert src.read() is not None
        ctx = src._stream.codec_context
        assert "FRAME" not in str(ctx.thread_type).upper() and "AUTO" not in str(ctx.thread_type).upper()
        assert ctx.thread_count <= 2


def test_a_decoded_picture_is_let_go_before_the_next_is_decoded(tmp_path):
    """Holding the last picture while the decoder makes the next one makes its pool keep one more full-size buffer."""
    path = write_noise_video(tmp_path / "n.avi", frames=6)
    held = []
    with PyAVSource.file(str(path), paced=False) as src:
        decoder = src._frames

        def watched():
            while True:
                held.append(src._frame)
                yield next(decoder)

        src._frames = watched()
        frames = [src.read() for _ in range(4)]
    assert all(f is not None for f in frames)
    assert held == [None] * 4
