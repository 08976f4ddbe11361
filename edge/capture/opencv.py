"""OpenCVSource: a V4L2 device, a video file or an RTSP stream through OpenCV.

Files take their timestamps from the container's PTS (``CAP_PROP_POS_MSEC``);
paced files are delivered in real time (a dry run, or a replayed incident),
unpaced ones as fast as they are read (tests, benchmarks, ``edge classify``).
Cameras and streams are stamped with the monotonic clock on arrival.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Iterator

import cv2


from edge.capture.base import Frame, SourceError
from edge.errors import EdgeError

logger = logging.getLogger(__name__)


class OpenCVSource:
    def __init__(self, kind: str, spec: str, *, loop: bool = False, paced: bool = False,
                 width: int = 0, height: int = 0, fps: float = 0.0) -> None:
        self.kind = kind  # "file" | "v4l2" | "rtsp"
        self.spec = spec
        self.loop = loop
        self.paced = paced
        self.width, self.height, self.req_fps = width, height, fps
        self.name = f"{kind}:{spec}"
        self.fps = 0.0
        self.realtime = kind != "file" or paced
        self._cap: cv2.VideoCapture | None = None
        self._seq = 0
        self._t0: float | None = None  # monotonic time of the first frame (cameras) / pacing origin (files)
        self._offset = 0.0  # video time added on each loop of a file
        self._last_pts = 0.0

    # ------------------------------------------------------------------ constructors

    @classmethod
    def file(cls, path: str, loop: bool = False, paced: bool = True) -> OpenCVSource:
        return cls("file", path, loop=loop, paced=paced)

    @classmethod
    def device(cls, spec: str, width: int = 640, height: int = 480, fps: float = 15.0) -> OpenCVSource:
        return cls("v4l2", spec, width=width, height=height, fps=fps)

    @classmethod
    def stream(cls, url: str) -> OpenCVSource:
        return cls("rtsp", url)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        self.close()
        if self.kind == "file":
            path = Path(self.spec)
            if not path.exists():
                raise EdgeError(f"video file {path} does not exist")
            if not os.access(path, os.R_OK):
                raise EdgeError(f"video file {path} is not readable (permissions)")
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                raise EdgeError(f"video file {path} could not be opened: not a video OpenCV can decode (corrupt, or an unsupported codec)")
        elif self.kind == "v4l2":
            cap = cv2.VideoCapture(device_index(self.spec), cv2.CAP_V4L2)
            if not cap.isOpened():
                raise SourceError(f"camera {self.spec} could not be opened")
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.req_fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of stale ones
        else:
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG)
            if not cap.isOpened():
                raise SourceError(f"stream {self.spec} could not be opened")
        self._cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if self.fps > 240:  # some containers report nonsense
            self.fps = 0.0
        self._t0 = None
        logger.info("opened %s (%.1f fps)", self.name, self.fps)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    # ------------------------------------------------------------------ reading

    def _grab(self) -> float | None:
        """Advance one frame without converting it; its timestamp, or None at the end."""
        cap = self._cap
        if cap is None:
            raise SourceError(f"{self.name} is not open")
        if not cap.grab():
            if self.kind != "file":
                raise SourceError(f"{self.name} stopped delivering frames")
            if not self.loop:
                return None
            self._offset = self._last_pts + (1.0 / self.fps if self.fps else 0.04)
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            if not cap.grab():
                return None
        if self.kind == "file":
            pts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 + self._offset
            self._last_pts = pts
            return pts
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        return now - self._t0

    def _retrieve(self, t: float) -> Frame:
        ok, bgr = self._cap.retrieve()
        if not ok or bgr is None:
            raise SourceError(f"{self.name}: a frame could not be decoded")
        if bgr.ndim == 2:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        else:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
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


