"""Clip encoders: H.264 MP4 through PyAV, else OpenCV's MPEG-4 Part 2 (``mp4v``) with one warning.

``codec: auto`` (the clip sink's setting) picks the first that really encodes
here, probed once per frame size with a few blank frames:

1. ``h264_v4l2m2m``: the Raspberry Pi 4's hardware H.264 encoder (the Pi 5 has none);
2. ``libx264``: software H.264 (``preset``/``crf`` from the config, ``zerolatency``);
3. ``mp4v`` through OpenCV: plays in VLC, not on phones or in browsers.

An explicitly configured encoder that does not open falls down the same list
with a warning instead of losing the evidence. PyAV is imported only here, on
first use (a Pi Zero that never saves a clip never loads FFmpeg).

Both writers take RGB frames with the source's own timestamps. The H.264
writer stamps each frame with its timestamp (time base 1/90000), so a
variable-rate camera gives a clip of the right duration; it writes ``yuv420p``
with ``movflags=faststart`` (the index before the data, so a phone starts
playing before the whole file has arrived). The OpenCV writer can only write a
constant rate: it repeats or skips frames to follow the timestamps.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

HARDWARE = "h264_v4l2m2m"
SOFTWARE = "libx264"
FALLBACK = "mp4v"
CHAIN = (HARDWARE, SOFTWARE, FALLBACK)
TIME_BASE = Fraction(1, 90000)  # the MPEG clock: fine enough for any camera's timestamps
HARDWARE_BITS_PER_PIXEL = 0.2  # h264_v4l2m2m has no CRF: bit rate = w * h * fps * this (640x480@15: 0.9 Mbit/s)
PROBE_FRAMES = 3
CRF, PRESET = 26, "ultrafast"  # the clip sink's defaults (edge/config.py)
PROBE_SIZE = (640, 480)
INSTALL_HINT = "install PyAV: pip install av (32-bit Raspberry Pi OS: sudo apt install python3-av), or ./install.sh"

_lock = threading.Lock()
_chosen: dict[tuple[str, int, int], Choice] = {}
_warned = False


@dataclass(frozen=True)
class Choice:
    encoder: str  # h264_v4l2m2m | libx264 | mp4v
    why: str = ""  # what failed before it ("" when the first candidate worked)

    @property
    def codec(self) -> str:
        """What ffprobe calls the result: ``h264`` or ``mpeg4``."""
        return "mpeg4" if self.encoder == FALLBACK else "h264"

    @property
    def hardware(self) -> bool:
        return self.encoder == HARDWARE


def even(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even sides: the size the H.264 writers encode (one column/row cropped when odd)."""
    return max(2, width - width % 2), max(2, height - height % 2)


def pyav_version() -> str:
    """PyAV's version, or "" when it does not import."""
    try:
        import av
    except Exception as err:  # a broken FFmpeg install raises more than ImportError
        logger.debug("import av: %s", err)
        return ""
    return str(av.__version__)


def probe(encoder: str, width: int = PROBE_SIZE[0], height: int = PROBE_SIZE[1], fps: float = 15.0) -> str:
    """"" when ``encoder`` writes a few blank frames of this size into an MP4 that decodes back, else why not.

    The whole chain, not just opening the codec: an encoder that opens but makes
    files nothing can play (no SPS/PPS for the MP4 header) must not be chosen.
    """
    if encoder == FALLBACK:
        return ""
    try:
        import av  # noqa: F401
    except Exception as err:
        return f"PyAV does not import ({err})"
    try:
        with tempfile.TemporaryDirectory(prefix="edge-probe-") as tmp:
            path = Path(tmp) / "probe.mp4"
            writer = PyAVWriter(path, encoder, width, height, fps)
            blank = np.zeros((height, width, 3), np.uint8)
            try:
                for k in range(PROBE_FRAMES):
                    writer.write(blank, k / fps)
                writer.close()
            except BaseException:
                writer.abort()
                raise
            if readable(path) == 0:
                raise OSError("the MP4 it wrote does not decode")
    except Exception as err:  # av.error.FFmpegError, OSError, or a codec this FFmpeg build lacks (ValueError)
        why = f"{type(err).__name__}: {err}".replace("\n", " ")
        return f"no hardware encoder here, only a Raspberry Pi 4 has one ({why})" if encoder == HARDWARE else why
    return ""


def choose(wanted: str = "auto", width: int = PROBE_SIZE[0], height: int = PROBE_SIZE[1]) -> Choice:
    """The encoder clips of this size use: ``wanted`` (or, for auto, the first of CHAIN) if it works, else the next."""
    width, height = even(width, height)
    key = (wanted, width, height)
    with _lock:
        if key in _chosen:
            return _chosen[key]
        start = 0 if wanted in ("auto", "avc1") else CHAIN.index(wanted)
        failed = []
        for encoder in CHAIN[start:]:
            why = probe(encoder, width, height)
            if not why:
                break
            failed.append(f"{encoder}: {why}")
            level = logging.DEBUG if wanted in ("auto", "avc1") else logging.WARNING
            logger.log(level, "clip: the %s encoder does not work here at %dx%d (%s)", encoder, width, height, why)
        choice = _chosen[key] = Choice(encoder, "; ".join(failed))
    if choice.encoder == FALLBACK and wanted != FALLBACK:
        _warn_fallback(choice)
    return choice


def _warn_fallback(choice: Choice) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    logger.warning("clip: no H.264 encoder works here (%s): clips are MPEG-4 Part 2 (mp4v), which phones and "
                   "browsers do not play; %s", choice.why, INSTALL_HINT)


def _configure(ctx, encoder: str, width: int, height: int, fps: float, crf: int, preset: str) -> None:
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = TIME_BASE
    ctx.framerate = Fraction(fps).limit_denominator(1001)
    if encoder == SOFTWARE:
        ctx.options = {"preset": preset, "crf": str(crf), "tune": "zerolatency"}
    else:
        ctx.bit_rate = int(width * height * fps * HARDWARE_BITS_PER_PIXEL)
        ctx.gop_size = max(1, round(fps * 2))


# --------------------------------------------------------------------------- writers


class PyAVWriter:
    """H.264 MP4 (yuv420p, faststart) through PyAV, each frame at its own timestamp."""

    def __init__(self, path: Path, encoder: str, width: int, height: int, fps: float, crf: int = CRF,
                 preset: str = PRESET) -> None:
        import av
        import cv2

        self.path, self.encoder = Path(path), encoder
        self.size = even(width, height)
        self._av, self._cv2 = av, cv2
        self._t0: float | None = None
        self._last_pts = -1
        try:
            self._out = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        except av.error.FFmpegError as err:
            raise OSError(f"cannot create {path}: {err}") from None
        try:
            self._stream = self._out.add_stream(encoder)
            _configure(self._stream.codec_context, encoder, *self.size, fps, crf, preset)
            self._stream.time_base = TIME_BASE
        except Exception as err:  # a codec this FFmpeg lacks (ValueError), an option it refuses
            self.abort()
            raise OSError(f"cannot set up {encoder} for {path}: {err}") from None

    def write(self, rgb: np.ndarray, t: float) -> None:
        """Encode one RGB frame shown at source time ``t``; OSError when the file cannot be written."""
        cv2 = self._cv2
        w, h = self.size
        if even(rgb.shape[1], rgb.shape[0]) == (w, h):
            rgb = rgb[:h, :w]  # an odd side loses its last column/row
        else:  # the source changed size mid-clip
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        # OpenCV's conversion: the same BT.601 limited range as FFmpeg's swscale, at a quarter of its CPU time
        yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
        frame = self._av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        if self._t0 is None:
            self._t0 = t
        pts = max(round((t - self._t0) / TIME_BASE), self._last_pts + 1)  # strictly increasing
        frame.pts, frame.time_base = pts, TIME_BASE
        self._last_pts = pts
        self._encode(frame)

    def _encode(self, frame) -> None:
        try:
            for packet in self._stream.encode(frame):
                self._out.mux(packet)
        except (self._av.error.FFmpegError, OSError) as err:
            raise OSError(f"encoding {self.path.name} failed: {err}") from None

    def close(self) -> None:
        """Flush the encoder and write the index (moved before the data). OSError when that fails."""
        try:
            self._encode(None)
        finally:
            try:
                self._out.close()
            except (self._av.error.FFmpegError, OSError) as err:
                raise OSError(f"finishing {self.path.name} failed: {err}") from None

    def abort(self) -> None:
        try:
            self._out.close()
        except Exception as err:  # a full disk may fail the close too; the caller deletes the file
            logger.debug("closing %s: %s", self.path, err)


class OpenCVWriter:
    """MPEG-4 Part 2 through OpenCV at a constant ``fps``: frames repeated or skipped to follow the timestamps."""

    encoder = FALLBACK

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        import cv2

        self.path, self.size, self.fps = Path(path), (width, height), fps
        self._cv2 = cv2
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FALLBACK), fps, self.size)
        if not self._writer.isOpened():
            self._writer.release()
            raise OSError(f"OpenCV could not open an {FALLBACK} writer for {path}")
        self._t0: float | None = None
        self._written = 0  # frame slots filled
        self._last: np.ndarray | None = None

    def write(self, rgb: np.ndarray, t: float) -> None:
        cv2 = self._cv2
        if (rgb.shape[1], rgb.shape[0]) != self.size:  # the source changed size mid-clip
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if self._t0 is None:
            self._t0 = t
        slot = round((t - self._t0) * self.fps)
        if self._last is not None:
            while self._written < slot:  # a gap in the timestamps: hold the previous frame
                self._put(self._last)
        if self._written <= slot:
            self._put(bgr)
        self._last = bgr

    def _put(self, bgr: np.ndarray) -> None:
        try:
            ok = self._writer.write(bgr)
        except self._cv2.error as err:
            raise OSError(f"writing a frame failed: {err}") from None
        if ok is False:  # OpenCV 5 reports a failed write (disk full); 4.x returns None
            raise OSError("writing a frame failed (disk full?)")
        self._written += 1

    def close(self) -> None:
        self._writer.release()

    def abort(self) -> None:
        try:
            self._writer.release()
        except Exception as err:
            logger.debug("closing %s: %s", self.path, err)


def open_writer(choice: Choice, path: Path, width: int, height: int, fps: float, crf: int = CRF,
                preset: str = PRESET) -> PyAVWriter | OpenCVWriter:
    if choice.encoder == FALLBACK:
        return OpenCVWriter(path, width, height, fps)
    return PyAVWriter(path, choice.encoder, width, height, fps, crf, preset)


def readable(path: Path, frames: int = PROBE_FRAMES) -> int:
    """Frames decoded back from the start of ``path`` (at most ``frames``); 0 when it is not a playable video."""
    try:
        import av
    except Exception:
        return _readable_cv2(path, frames)
    n = 0
    try:
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                n += 1
                if n >= frames:
                    break
    except (av.error.FFmpegError, OSError, IndexError) as err:  # IndexError: no video stream
        logger.debug("reading %s back: %s", path, err)
    return n


def _readable_cv2(path: Path, frames: int) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        n = 0
        while cap.isOpened() and n < frames and cap.read()[0]:
            n += 1
        return n
    finally:
        cap.release()
