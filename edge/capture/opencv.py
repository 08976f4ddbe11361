"""OpenCVSource: a V4L2 device, a video file or an RTSP stream through OpenCV.

Files take their timestamps from the container's PTS (``CAP_PROP_POS_MSEC``);
paced files are delivered in real time (a dry run, or a replayed incident),
unpaced ones as fast as they are read (tests, benchmarks, ``edge classify``).
Cameras and streams are stamped with the monotonic clock on arrival.

Every kind delivers frames of at most ``width`` x ``height`` (aspect kept): a
camera is asked for that size, and whatever comes bigger (a 1080p file or RTSP
camera, a webcam that ignores the request) is scaled down once, here, before it
is converted to RGB. 0 x 0 keeps the decoded size (``edge classify``).
The source's name never carries a URL's credentials (:func:`redact`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Iterator

import cv2


from edge.capture.base import Frame, SourceError, fit_within, redact
from edge.errors import EdgeError

logger = logging.getLogger(__name__)


class OpenCVSource:
    def __init__(self, kind: str, spec: str, *, loop: bool = False, paced: bool = False,
                 width: int = 0, height: int = 0, fps: float = 0.0, timeout: float = 5.0) -> None:
        self.kind = kind  # "file" | "v4l2" | "rtsp"
        self.spec = spec
        self.loop = loop
        self.paced = paced
        self.width, self.height, self.req_fps = width, height, fps  # 0 x 0: frames as decoded
        self.timeout = timeout  # seconds a stream's open or read may block (then it has stalled)
        self.name = f"{kind}:{redact(spec)}"
        self.fps = 0.0
        self.duration = 0.0  # files: the length the container declares (0 if unknown)
        self.size: tuple[int, int] | None = None  # (w, h) of the frames delivered, once one was
        self._opened = False  # a loop file read once: failing to read it again is retried, not fatal
        self._decoded = self._scaled = None  # scratch buffers reused frame after frame (never handed out)
        self.realtime = kind != "file" or paced
        self.can_freeze = kind == "v4l2"  # a file or an RTSP encoder may repeat a frame bit for bit on a still scene
        self._cap: cv2.VideoCapture | None = None
        self._seq = 0
        self._t0: float | None = None  # monotonic time of the first frame (cameras) / pacing origin (files)
        self._offset = 0.0  # video time added on each loop of a file
        self._last_pts = 0.0
        self._grabs = 0  # frames grabbed from a file (over every loop)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def file(cls, path: str, loop: bool = False, paced: bool = True, width: int = 0, height: int = 0) -> OpenCVSource:
        return cls("file", path, loop=loop, paced=paced, width=width, height=height)

    @classmethod
    def device(cls, spec: str, width: int = 640, height: int = 480, fps: float = 15.0) -> OpenCVSource:
        return cls("v4l2", spec, width=width, height=height, fps=fps)

    @classmethod
    def stream(cls, url: str, width: int = 0, height: int = 0, timeout: float = 5.0) -> OpenCVSource:
        return cls("rtsp", url, width=width, height=height, timeout=timeout)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        self.close()
        # a loop file that was read once and is now gone or broken is waited for, like a camera
        fail = SourceError if self.kind != "file" or (self.loop and self._opened) else EdgeError
        if self.kind == "file":
            path = Path(self.spec)
            if not path.exists():
                raise fail(f"video file {path} does not exist")
            if not os.access(path, os.R_OK):
                raise fail(f"video file {path} is not readable (permissions)")
        size, fps, count = self._open_backend(fail)
        self.fps = fps if 0 < fps <= 240 else 0.0  # some containers report nonsense
        if self.kind == "file":
            self.duration = count / self.fps if self.fps and 0 < count < 1e9 else 0.0
            if self._opened:  # reopened (a loop file that came back): its time goes on from where it was
                self._offset = self._last_pts + (1.0 / self.fps if self.fps else 0.04)
        self._opened = True
        self._t0 = None
        fit = fit_within(*size, self.width, self.height)
        shown = f"{size[0]}x{size[1]}" + (f", scaled to {fit[0]}x{fit[1]}" if fit else "")
        logger.info("opened %s (%s, %.1f fps)", self.name, shown, self.fps)

    def _open_backend(self, fail: type[Exception]) -> tuple[tuple[int, int], float, float]:
        """Open the decoder (``self._cap``); (width, height), fps and frame count as the source declares them."""
        if self.kind == "file":
            cap = cv2.VideoCapture(self.spec)
            if not cap.isOpened():
                raise fail(f"video file {self.spec} could not be opened: not a video OpenCV can decode (corrupt, or an unsupported codec)")
        elif self.kind == "v4l2":
            cap = cv2.VideoCapture(device_index(self.spec), cv2.CAP_V4L2)
            if not cap.isOpened():
                raise SourceError(f"camera {self.spec} could not be opened")
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.req_fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of stale ones
        else:
            ms = int(self.timeout * 1000)  # FFmpeg otherwise blocks for as long as a frozen server keeps the socket
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
            if not cap.isOpened():
                raise SourceError(f"stream {self.name} could not be opened")
        self._cap = cap
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        return size, float(cap.get(cv2.CAP_PROP_FPS) or 0.0), float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    # ------------------------------------------------------------------ reading

    def _advance(self) -> bool:
        """Decode (or just demux) the next frame; False at the end or on a read error."""
        return self._cap.grab()

    def _position(self) -> float:
        """The current frame's presentation time in seconds (files)."""
        return self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0

    def _rewind(self) -> None:
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def _grab(self) -> float | None:
        """Advance one frame without converting it; its timestamp, or None at the end."""
        if self._cap is None:
            raise SourceError(f"{self.name} is not open")
        if not self._advance():
            if self.kind != "file":
                raise SourceError(f"{self.name} stopped delivering frames")
            if not self.loop:
                return None
            self._offset = self._last_pts + (1.0 / self.fps if self.fps else 0.04)
            self._rewind()
            if not self._advance():  # truncated or replaced in place: reopen it, with backoff, like a camera
                raise SourceError(f"{self.name} could not be read again from its start")
        if self.kind == "file":
            pts = self._position() + self._offset
            if self._grabs and pts <= self._last_pts:  # some containers (AVI) report 0 for their last frame
                pts = self._last_pts + (1.0 / self.fps if self.fps else 0.04)
            self._grabs += 1
            self._last_pts = pts
            return pts
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        return now - self._t0

    def _pixels(self):
        """The current frame as RGB, at most width x height."""
        # decoded into the same buffer every frame: only the converted (and scaled) copy below leaves this
        # source, so a 4K stream costs one 4K buffer, not a fresh 25 MB one a frame for malloc to hold on to
        ok, bgr = self._cap.retrieve(self._decoded)
        if not ok or bgr is None:
            raise SourceError(f"{self.name}: a frame could not be decoded")
        self._decoded = bgr
        fit = fit_within(bgr.shape[1], bgr.shape[0], self.width, self.height)
        if fit is not None:  # scaled before the colour conversion: it then works on fewer pixels
            bgr = self._scaled = cv2.resize(bgr, fit, self._scaled, interpolation=cv2.INTER_AREA)
        if bgr.ndim == 2:
            return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _retrieve(self, t: float) -> Frame:
        rgb = self._pixels()
        self.size = (rgb.shape[1], rgb.shape[0])
        frame = Frame(rgb, t, self._seq)
        self._seq += 1
        return frame

    def _pace(self, t: float) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - t
        delay = self._t0 + t - now
        if delay > 0:
            time.sleep(delay)

    def read(self) -> Frame | None:
        t = self._grab()
        if t is None:
            return None
        if self.kind == "file" and self.paced:
            self._pace(t)
        return self._retrieve(t)

    def sampled(self, accept) -> Iterator[Frame]:
        """Frames whose timestamp ``accept(t)`` takes; the others are grabbed but never converted."""
        while True:
            t = self._grab()
            if t is None:
                return
            if accept(t):
                if self.kind == "file" and self.paced:
                    self._pace(t)
                yield self._retrieve(t)

    def __enter__(self) -> OpenCVSource:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def device_index(spec: str) -> int:
    """0, /dev/video0, or a udev link such as /dev/v4l/by-id/usb-...-video-index0 -> 0.

    OpenCV's V4L2 backend opens devices by index, not by path.
    """
    if spec.isdigit():
        return int(spec)
    real = os.path.realpath(spec)
    match = re.fullmatch(r"/dev/video(\d+)", real)
    if match is None:
        raise EdgeError(f"camera {spec} is not a V4L2 device (expected 0, /dev/videoN or a link to one)")
    return int(match.group(1))


def read_frames(path: str, fps: float | None = None) -> Iterator[Frame]:
    """Every frame of a file (or those nearest a ``fps`` grid), as fast as it decodes."""
    from edge.sampler import FrameSampler

    src = OpenCVSource.file(path, paced=False)
    with src:
        if fps is None:
            while (frame := src.read()) is not None:
                yield frame
        else:
            yield from src.sampled(FrameSampler(fps).accept)


