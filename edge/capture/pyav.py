"""PyAVSource: a video file or an RTSP stream decoded through PyAV, for the daemon.

The same source as :class:`~edge.capture.opencv.OpenCVSource` (timestamps, pacing,
looping, credentials kept out of its name), with a decoder that scales while it
converts: FFmpeg's swscale goes from the decoder's YUV straight to RGB at most
``width`` x ``height``, so no full-size RGB/BGR copy of a big frame is ever
made. Measured on a 4K MJPEG file: 35 MB of decode memory against OpenCV's 72 MB
(119 MB before its buffers were reused); on the shared 1080p H.264 clip 19 MB
against 43-56 MB. The A0 model and ring are the same either way, so this is
what keeps a 1080p camera's daemon the size of a 640x480 one's.

PyAV is imported in :meth:`open`, never at module import; where it is missing
(a 32-bit board without python3-av) :func:`edge.capture.open_source` uses
OpenCVSource instead. ``edge classify``, ``eval`` and ``bench`` read files with
OpenCVSource, at the file's own size.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edge.capture.base import SourceError, fit_within
from edge.capture.opencv import OpenCVSource

logger = logging.getLogger(__name__)


def available() -> bool:
    """True when PyAV imports (checked without importing it twice)."""
    import importlib.util

    return importlib.util.find_spec("av") is not None


class PyAVSource(OpenCVSource):
    """A file or RTSP FrameSource decoded by PyAV (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._container: Any = None
        self._stream: Any = None
        self._frames: Any = None  # the decode generator
        self._frame: Any = None  # the frame _advance stopped on

    def _open_backend(self, fail: type[Exception]) -> tuple[tuple[int, int], float, float]:
        import av

        _route_libav_log()
        options = {"rtsp_transport": "tcp"} if self.kind == "rtsp" else {}
        timeout = (self.timeout, self.timeout) if self.kind == "rtsp" else None
        try:
            container = av.open(self.spec, options=options, timeout=timeout)
        except (av.error.FFmpegError, OSError, ValueError) as err:
            what = f"stream {self.name}" if self.kind == "rtsp" else f"video file {self.spec}"
            raise fail(f"{what} could not be opened: {_reason(err)}") from None
        if not container.streams.video:
            container.close()
            raise fail(f"{self.name} has no video stream")
        stream = container.streams.video[0]
        # slice threads, never frame threads: a frame thread holds a full-size picture and a decoder context of
        # its own (+6.6 MB each on the shared 1080p H.264 clip), the very memory a big camera must not cost.
        # Measured (benchmarks/memory.py, docs/robustness.md): peak RSS x1.08 of the 640x480 run instead of
        # x1.12, no more CPU a frame; but a stream sent as one slice a picture decodes on one core (up to 20 %
        # longer a 1080p frame on x86 when a second core is free)
        stream.thread_type, stream.thread_count = "SLICE", 2
        ctx = stream.codec_context
        fit = fit_within(ctx.width, ctx.height, self.width, self.height)
        lowres = _lowres(ctx.name, ctx.width, ctx.height, *fit) if fit else 0
        if lowres:  # a JPEG decoder can decode at 1/2, 1/4 or 1/8 size: no full-size frame is ever made
            ctx.options = {**ctx.options, "lowres": str(lowres)}
        self._container, self._stream = container, stream
        self._frames = container.decode(stream)
        self._cap = container  # what OpenCVSource checks for "open"
        rate = float(stream.average_rate or stream.guessed_rate or 0.0)
        count = float(stream.frames or 0)
        if not count and rate and container.duration:  # containers without a frame count (mkv): from the duration
            count = container.duration / 1e6 * rate
        return (ctx.width, ctx.height), rate, count

    def close(self) -> None:
        container, self._container = self._container, None
        self._cap = self._stream = self._frames = self._frame = None
        if container is not None:
            try:
                container.close()
            except Exception as err:  # a dead stream may fail to close; nothing is lost
                logger.debug("closing %s: %s", self.name, _reason(err))

    def _advance(self) -> bool:
        import av

        self._frame = None  # let the decoder reuse this picture's buffer for the next one, not allocate another
        try:
            self._frame = next(self._frames)
            return True
        except StopIteration:
            return False
        except (av.error.FFmpegError, OSError) as err:  # a timeout, a reset connection, a corrupt tail
            logger.debug("%s: %s", self.name, _reason(err))
            return False

    def _position(self) -> float:
        t = self._frame.time
        if t is None:  # no PTS: the next frame period after the last one
            return self._last_pts - self._offset + (1.0 / self.fps if self.fps else 0.04)
        return float(t)

    def _rewind(self) -> None:
        import av

        try:
            self._container.seek(0)
        except (av.error.FFmpegError, OSError) as err:
            logger.debug("%s: rewind: %s", self.name, _reason(err))
        self._frames = self._container.decode(self._stream)

    def _pixels(self) -> np.ndarray:
        frame = self._frame
        size = fit_within(frame.width, frame.height, self.width, self.height) or (frame.width, frame.height)
        try:
            rgb = frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
        except Exception as err:  # an odd pixel format swscale refuses
            raise SourceError(f"{self.name}: a frame could not be converted: {_reason(err)}") from None
        return rgb if rgb.flags.c_contiguous else np.ascontiguousarray(rgb)  # rows padded to swscale's alignment


def _lowres(codec: str, width: int, height: int, need_w: int, need_h: int) -> int:
    """How many halvings (0-3) the decoder may do itself and still give at least need_w x need_h (the size the
    frame is scaled to): MJPEG decodes at 1/2, 1/4 or 1/8 size for almost nothing, so a 4K camera costs no 4K frame."""
    if codec != "mjpeg":
        return 0
    k = 0
    while k < 3 and -(-width >> (k + 1)) >= need_w and -(-height >> (k + 1)) >= need_h:
        k += 1
    return k


class _LibavDebug(logging.Handler):
    """FFmpeg's own messages, as our debug lines (``edge -v`` shows them)."""

    def emit(self, record: logging.LogRecord) -> None:
        logger.debug("%s: %s", record.name, " ".join(record.getMessage().split()))  # one line: "...\n (repeated 5 more times)"


def _route_libav_log() -> None:
    """Keep FFmpeg's messages ("deprecated pixel format used" for every MJPEG frame, "moov atom not found",
    "error while decoding MB ...") out of the journal: a source that cannot be read is reported by us, in one
    line. PyAV 13 and later drop them unless asked; older PyAV (Debian 12's python3-av 10) turns them into
    ``libav.*`` warnings and errors in Python's logging, which this makes debug lines of ours."""
    libav = logging.getLogger("libav")
    if not any(isinstance(h, _LibavDebug) for h in libav.handlers):
        libav.addHandler(_LibavDebug())
        libav.propagate = False


def _reason(err: BaseException) -> str:
    """An FFmpeg error without the URL PyAV appends (it may carry a password)."""
    return getattr(err, "strerror", None) or type(err).__name__


__all__ = ["PyAVSource", "available"]
