"""PicameraSource: a Raspberry Pi CSI camera through picamera2 (libcamera).

picamera2 is imported inside :meth:`PicameraSource.open` and
:func:`camera_present`, never at module import: a board without it (or a
laptop) can import this module, and ``edge --help`` stays quick.

Channel order is fixed here, once: picamera2's ``RGB888`` is B, G, R in memory
(libcamera names formats by their little-endian word), so every frame is
reversed to R, G, B before it leaves this module. Nothing downstream swaps
channels again.

Each frame is copied out of the camera buffer (``request.make_array``) and the
request released at once, so a frame can sit in the ring while libcamera
reuses its buffer. The timestamp is the request's ``SensorTimestamp`` (ns,
CLOCK_MONOTONIC, the start of exposure), else ``time.monotonic()`` on arrival,
in seconds since the first frame this source delivered; it stays on the same
clock across a reopen, so a vanished camera shows up as a gap in ``t``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from edge.capture.base import Frame, SourceError, fit_within
from edge.errors import EdgeError

logger = logging.getLogger(__name__)

INSTALL_HINT = ("picamera2 is not importable: install it with `sudo apt install python3-picamera2` "
                "and create the venv with --system-site-packages (install.sh does both)")


def _csi_cameras(info: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cameras libcamera lists, minus USB webcams (those are better read through V4L2)."""
    return [c for c in info if "usb@" not in str(c.get("Id", "")) and c.get("Model") != "uvcvideo"]


def camera_present() -> tuple[bool, str]:
    """(True, model) when picamera2 imports and libcamera lists a CSI camera; never raises."""
    try:
        from picamera2 import Picamera2
    except Exception as err:  # ImportError, or libcamera's bindings failing to load
        return False, f"picamera2 not importable: {err}"
    try:
        info = list(Picamera2.global_camera_info() or [])
    except Exception as err:
        return False, f"libcamera could not list cameras: {err}"
    if not info:
        return False, "libcamera lists no camera (check the ribbon cable; `rpicam-hello --list-cameras`)"
    csi = _csi_cameras(info)
    if not csi:
        return False, "libcamera lists only USB cameras (read through V4L2 instead)"
    return True, str(csi[0].get("Model", "camera"))


class PicameraSource:
    """A CSI camera: RGB frames at ``width`` x ``height``, ``fps`` a second (a FrameSource)."""

    name = "picamera2"
    realtime = True
    can_freeze = True  # a sensor's noise never repeats a frame bit for bit: identical frames mean it froze

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0, camera_num: int = 0,
                 timeout: float | None = None) -> None:
        if fps <= 0:
            raise ValueError("fps must be > 0")
        self.width, self.height = int(width), int(height)
        self.fps = float(fps)
        self.camera_num = camera_num
        # seconds a read waits for a frame before the camera counts as gone: the factory passes
        # edge.capture.supervisor.read_timeout(fps), which stays under the daemon's health limit
        self.timeout = timeout if timeout is not None else max(2.0, 4.0 / self.fps)
        self.camera: Any = None  # the Picamera2 object while open (the overlay sink's DRM preview may use it)
        self.config: Any = None
        self._seq = 0
        self._t0: float | None = None  # seconds on CLOCK_MONOTONIC of the first frame

    @property
    def frame_duration_us(self) -> int:
        return int(round(1e6 / self.fps))

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Acquire, configure and start the camera. SourceError if it is not there (yet)."""
        self.close()
        try:
            from picamera2 import Picamera2
        except Exception as err:
            raise EdgeError(f"{INSTALL_HINT} ({err})") from None
        d = self.frame_duration_us
        try:
            cam = Picamera2(self.camera_num)
        except Exception as err:  # RuntimeError/IndexError: no camera, or another process holds it
            raise SourceError(f"picamera2: camera {self.camera_num} could not be opened: {err}") from None
        self.camera = cam
        try:
            self.config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameDurationLimits": (d, d)})
            cam.configure(self.config)
            cam.start()
        except Exception as err:
            self.close()
            raise SourceError(f"picamera2: camera {self.camera_num} could not be started: {err}") from None
        logger.info("opened picamera2 camera %d (%dx%d, %.1f fps)", self.camera_num, self.width, self.height, self.fps)

    def close(self) -> None:
        """Stop and release the camera. Idempotent; never raises."""
        cam, self.camera = self.camera, None
        if cam is None:
            return
        try:
            cam.stop()
        except Exception as err:  # a vanished camera may fail to stop
            logger.debug("picamera2 stop: %s", err)
        try:
            cam.close()
        except Exception as err:
            logger.debug("picamera2 close: %s", err)

    def __enter__(self) -> PicameraSource:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def read(self) -> Frame:
        """The next frame, RGB. SourceError when the camera stops delivering (the daemon reopens it)."""
        cam = self.camera
        if cam is None:
            raise SourceError("picamera2 is not open")
        try:
            request = cam.capture_request(wait=self.timeout)
        except Exception as err:  # TimeoutError, RuntimeError from libcamera: the camera went away
            raise SourceError(f"picamera2 stopped delivering frames: {type(err).__name__}: {err}") from None
        try:
            array = request.make_array("main")  # a copy: the buffer goes back to libcamera below
            metadata = request.get_metadata() or {}
        except Exception as err:
            raise SourceError(f"picamera2: a frame could not be read: {type(err).__name__}: {err}") from None
        finally:
            try:
                request.release()
            except Exception as err:
                logger.debug("picamera2 release: %s", err)
        if array is None or array.ndim != 3 or array.shape[2] < 3:
            raise SourceError(f"picamera2: unexpected frame shape {getattr(array, 'shape', None)}")
        fit = fit_within(array.shape[1], array.shape[0], self.width, self.height)
        if fit is not None:  # the ISP scales to the size asked; a camera that ignored it is scaled here, once
            import cv2

            array = cv2.resize(array[..., :3], fit, interpolation=cv2.INTER_AREA)
        # RGB888 is B, G, R in memory: reverse the first three channels, here and only here.
        pixels = np.ascontiguousarray(array[..., 2::-1])
        stamp = metadata.get("SensorTimestamp")
        now = stamp / 1e9 if isinstance(stamp, (int, float)) and stamp > 0 else time.monotonic()
        if self._t0 is None:
            self._t0 = now
        frame = Frame(pixels, now - self._t0, self._seq)
        self._seq += 1
        return frame
