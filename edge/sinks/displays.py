"""Where the overlay sink's pictures go: a small Display protocol and its implementations.

``NullDisplay`` shows nothing and is the base of the others (as picamera2's
``DrmPreview`` extends ``NullPreview``); ``RecordingDisplay`` keeps what it was
shown, for tests. The real ones:

- ``DrmDisplay``: picamera2's DRM preview shows the live camera and the display
  is handed a transparent RGBA *layer* (the panel and banner only) that goes on
  top of it with ``Picamera2.set_overlay``.
- ``FbdevDisplay``: the annotated frame, letterboxed to the screen and converted
  to the framebuffer's pixel format (RGB565 or XRGB8888), written with one
  ``pwrite`` per frame.
- ``SnapshotDisplay``: the annotated frame as a JPEG every few seconds, replaced
  atomically, for someone on SSH.

A display paces itself: ``due(now)`` says whether it wants a picture now, so the
sink renders only pictures somebody will see. ``now`` is the sink's clock
(``time.monotonic`` unless a test injects one): wall-clock pacing, so a file
replayed faster than real time does not produce more snapshots.

``pick_display`` resolves ``display: auto`` (drm, else fbdev, else snapshot) and
opens the result.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import cv2
import numpy as np

from edge.atomic import write_bytes_atomic
from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.sinks.base import CameraRef

logger = logging.getLogger(__name__)


class Display(Protocol):
    name: str  # "fbdev", "drm", "snapshot", ...
    layer: bool  # True: wants a transparent RGBA layer over a live preview; False: an annotated RGB frame
    shown: int  # pictures shown so far

    def open(self) -> None: ...

    def due(self, now: float) -> bool: ...

    def layer_size(self, frame_hw: tuple[int, int] | None) -> tuple[int, int]: ...

    def show(self, image: np.ndarray, now: float) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


class NullDisplay:
    """Shows nothing and never asks for a picture. The base class of the real displays."""

    name = "null"
    layer = False

    def __init__(self, interval: float = math.inf) -> None:
        self.interval = interval  # seconds between pictures
        self.shown = 0
        self._last: float | None = None
        self.closed = False

    def open(self) -> None:
        pass

    def due(self, now: float) -> bool:
        if math.isinf(self.interval) or self.closed:
            return False
        return self._last is None or now - self._last >= self.interval

    def layer_size(self, frame_hw: tuple[int, int] | None) -> tuple[int, int]:
        """(h, w) of the RGBA layer a layer display wants."""
        return frame_hw or (480, 640)

    def show(self, image: np.ndarray, now: float) -> None:
        self._last = now  # an error still counts as an attempt: retry after the interval, not per prediction
        self.put(image)
        self.shown += 1

    def put(self, image: np.ndarray) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def describe(self) -> str:
        return self.name


class RecordingDisplay(NullDisplay):
    """Keeps what it was shown (the last ``keep`` pictures), for tests."""

    name = "recording"

    def __init__(self, interval: float = 0.0, layer: bool = False, keep: int = 100) -> None:
        super().__init__(interval)
        self.layer = layer
        self.keep = keep
        self.images: list[np.ndarray] = []
        self.opened = False

    def open(self) -> None:
        self.opened = True

    def put(self, image: np.ndarray) -> None:
        self.images.append(image)
        del self.images[:-self.keep]


# --------------------------------------------------------------------------- snapshot


class SnapshotDisplay(NullDisplay):
    """The annotated frame as a JPEG every ``every`` seconds, written to a temp file and renamed over ``path``."""

    name = "snapshot"

    def __init__(self, path: str | os.PathLike, every: float = 5.0, quality: int = 85) -> None:
        super().__init__(every)
        self.path = Path(path)
        self.quality = int(quality)

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def put(self, image: np.ndarray) -> None:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise OSError(f"could not encode a JPEG of shape {image.shape}")
        write_bytes_atomic(self.path, jpeg.tobytes())  # 0644: the point is that someone else can fetch it

    def describe(self) -> str:
        return f"snapshot:{self.path} every {self.interval:g} s"


# --------------------------------------------------------------------------- fbdev


@dataclass(frozen=True)
class FbGeometry:
    width: int
    height: int
    bpp: int  # bits per pixel: 16 (RGB565) or 32 (XRGB8888)
    stride: int  # bytes per row, >= width * bpp / 8

    def __str__(self) -> str:
        return f"{self.width}x{self.height}, {self.bpp} bpp"


def fb_sysfs_dir(device: str | os.PathLike) -> Path:
    """/dev/fb1 -> /sys/class/graphics/fb1."""
    return Path("/sys/class/graphics") / Path(device).name


def read_fb_geometry(sysfs_dir: str | os.PathLike) -> FbGeometry:
    """Geometry and pixel format from sysfs (``virtual_size``, ``bits_per_pixel``, optional ``stride``)."""
    d = Path(sysfs_dir)
    try:
        w, h = (int(v) for v in (d / "virtual_size").read_text().strip().split(","))
        bpp = int((d / "bits_per_pixel").read_text().strip())
    except (OSError, ValueError) as err:
        raise EdgeError(f"cannot read the framebuffer geometry from {d}: {err}") from None
    if bpp not in (16, 32):
        raise EdgeError(f"framebuffer {d.name}: {bpp} bits per pixel is not supported (16 or 32)")
    try:
        stride = int((d / "stride").read_text().strip())
    except (OSError, ValueError):  # not on every kernel
        stride = w * bpp // 8
    if w <= 0 or h <= 0 or stride < w * bpp // 8:
        raise EdgeError(f"framebuffer {d.name}: implausible geometry {w}x{h}, {bpp} bpp, stride {stride}")
    return FbGeometry(w, h, bpp, stride)


def letterbox_rect(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x, y, w, h) of ``src`` scaled into ``dst`` keeping its aspect ratio, centred."""
    sh, sw = src_hw
    dh, dw = dst_hw
    if sw * dh > dw * sh:  # wider than the screen: bars above and below
        w, h = dw, max(1, round(dw * sh / sw))
    else:
        w, h = max(1, round(dh * sw / sh)), dh
    return (dw - w) // 2, (dh - h) // 2, w, h


class FbdevDisplay(NullDisplay):
    """Writes the annotated frame to a Linux framebuffer: letterboxed, converted, one ``pwrite`` per frame.

    The pixel buffer (screen rows of ``stride`` bytes, black bars and row
    padding zero) is allocated once; each frame only resizes, converts and
    copies the picture's own rectangle. ``close()`` blanks the screen (unless
    ``blank_on_close`` is false) so a stale alert banner is not left showing.
    """

    name = "fbdev"

    def __init__(self, device: str | os.PathLike = "/dev/fb0", sysfs_dir: str | os.PathLike | None = None,
                 interval: float = 0.1, blank_on_close: bool = True) -> None:
        super().__init__(interval)
        self.device = str(device)
        self.sysfs_dir = Path(sysfs_dir) if sysfs_dir is not None else fb_sysfs_dir(device)
        self.blank_on_close = blank_on_close
        self.geometry: FbGeometry | None = None
        self._fd: int | None = None
        self._buf: np.ndarray | None = None  # (height, stride) uint8
        self._pixels: np.ndarray | None = None  # (height, width, bytes per pixel) view of _buf
        self._rect_for: tuple[tuple[int, int], tuple[int, int, int, int]] | None = None

    def open(self) -> None:
        if self._fd is not None:
            return
        g = read_fb_geometry(self.sysfs_dir)
        self._fd = os.open(self.device, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        self.geometry = g
        self._buf = np.zeros((g.height, g.stride), np.uint8)
        self._pixels = self._buf[:, :g.width * g.bpp // 8].reshape(g.height, g.width, g.bpp // 8)

    def _rect(self, src_hw: tuple[int, int]) -> tuple[int, int, int, int]:
        if self._rect_for is None or self._rect_for[0] != src_hw:
            g = self.geometry
            rect = letterbox_rect(src_hw, (g.height, g.width))
            self._pixels[...] = 0  # the picture moved: the new bars must be black
            self._rect_for = (src_hw, rect)
        return self._rect_for[1]

    def put(self, image: np.ndarray) -> None:
        if self._fd is None:
            raise OSError(f"framebuffer {self.device} is not open")
        x, y, w, h = self._rect(image.shape[:2])
        if (h, w) != image.shape[:2]:
            shrink = w < image.shape[1]
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        code = cv2.COLOR_RGB2BGR565 if self.geometry.bpp == 16 else cv2.COLOR_RGB2BGRA  # B,G,R,X in memory
        self._pixels[y:y + h, x:x + w] = cv2.cvtColor(image, code)
        self._write()

    def _write(self) -> None:
        data = memoryview(self._buf).cast("B")
        n = os.pwrite(self._fd, data, 0)
        if n != len(data):
            raise OSError(f"short write to {self.device}: {n} of {len(data)} bytes")

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self.blank_on_close and self._buf is not None:
                self._buf[...] = 0
                os.pwrite(fd, memoryview(self._buf).cast("B"), 0)
        except OSError as err:
            logger.debug("could not blank %s: %s", self.device, err)
        finally:
            os.close(fd)

    def describe(self) -> str:
        return f"fbdev:{self.device}" + (f" ({self.geometry})" if self.geometry else "")


# --------------------------------------------------------------------------- drm (picamera2 preview)


class DrmDisplay(NullDisplay):
    """picamera2's DRM preview of the live camera, with the panel as an RGBA overlay (``set_overlay``).

    ``camera`` is the ``Picamera2`` object, or a callable returning the current
    one (the source reopens a vanished camera as a new object; the preview is
    moved to it on the next picture). The camera must be configured with a
    display stream and at least 2 buffers (picamera2's preview and video
    configurations are). Opening stops the camera's NULL preview event loop and
    starts a DRM one in its place; closing puts a NULL preview back so the
    capture keeps running if the camera outlives the sink.

    The layer is scaled by the DRM plane onto the picture, so it is drawn at the
    display stream's aspect ratio and at most ``max_width`` pixels wide (a new
    layer costs a buffer allocation and a copy in picamera2).
    """

    name = "drm"
    layer = True

    def __init__(self, camera: CameraRef, interval: float = 0.1, screen_hw: tuple[int, int] | None = None,
                 max_width: int = 960) -> None:
        super().__init__(interval)
        self._camera_ref = camera
        self.screen_hw = screen_hw
        self.max_width = max_width
        self._camera: Any = None  # the camera whose preview we started

    def current_camera(self) -> Any:
        return self._camera_ref()

    def open(self) -> None:
        cam = self.current_camera()
        if cam is None:
            raise EdgeError("the drm overlay needs the picamera2 camera, and none is open")
        self._attach(cam)

    def _attach(self, cam: Any) -> None:
        from picamera2 import Preview  # only here: low-powered Pis without a screen never import it

        try:
            cam.stop_preview()  # the NULL preview that Picamera2.start() runs by default
        except RuntimeError:
            pass  # no preview running
        kwargs = {}
        if self.screen_hw is not None:
            kwargs = {"x": 0, "y": 0, "width": self.screen_hw[1], "height": self.screen_hw[0]}
        cam.start_preview(Preview.DRM, **kwargs)
        self._camera = cam

    def layer_size(self, frame_hw: tuple[int, int] | None) -> tuple[int, int]:
        hw = frame_hw or (480, 640)
        try:
            cfg = self._camera.camera_config
            w, h = cfg[cfg["display"]]["size"]
            hw = (int(h), int(w))
        except Exception:  # not configured (yet): the frame's shape is the display stream's in practice
            pass
        h, w = hw
        if w > self.max_width:
            h, w = max(1, round(h * self.max_width / w)), self.max_width
        return h, w

    def put(self, image: np.ndarray) -> None:
        cam = self.current_camera()
        if cam is None:
            return  # camera gone (being reopened): nothing to draw on
        if cam is not self._camera:
            logger.info("drm overlay: the camera was reopened; moving the preview to it")
            self._attach(cam)
        cam.set_overlay(image)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        cam, self._camera = self._camera, None
        if cam is None:
            return
        for step in (lambda: cam.set_overlay(None), cam.stop_preview, cam.start_preview):
            try:
                step()
            except Exception as err:  # the camera may already be closed (capture stops first)
                logger.debug("drm overlay close: %s", err)
                break

    def describe(self) -> str:
        return "drm" + (f" ({self.screen_hw[1]}x{self.screen_hw[0]})" if self.screen_hw else "")


# --------------------------------------------------------------------------- choosing one


def pick_display(cfg: Any, camera: CameraRef = lambda: None, *, sysfs_dir: str | os.PathLike | None = None,
                 state_path: Callable[[str], Path] | None = None) -> tuple[NullDisplay, str]:
    """An opened display for ``cfg.display`` and why it was chosen.

    ``auto``: drm when a picamera2 camera is available, else fbdev when
    ``cfg.fb_device`` exists and is writable, else snapshot; a display that
    fails to open falls through to the next. An explicit choice is opened or
    raises. ``camera`` returns the open Picamera2 object, or None.
    """
    interval = 1.0 / cfg.max_fps
    sysfs = Path(sysfs_dir) if sysfs_dir is not None else fb_sysfs_dir(cfg.fb_device)
    resolve = state_path or (lambda p: Path(p))
    cam = camera()

    def drm() -> DrmDisplay:
        screen = None
        try:
            g = read_fb_geometry(sysfs)  # with KMS, fb0 is the emulation of the screen's mode
            screen = (g.height, g.width)
        except EdgeError:
            pass  # picamera2's default window
        return DrmDisplay(camera, interval=interval, screen_hw=screen)

    def fbdev() -> FbdevDisplay:
        return FbdevDisplay(cfg.fb_device, sysfs, interval=interval, blank_on_close=cfg.blank_on_close)

    def snapshot() -> SnapshotDisplay:
        return SnapshotDisplay(resolve(cfg.snapshot_path), every=cfg.snapshot_every, quality=cfg.jpeg_quality)

    makers = {"drm": drm, "fbdev": fbdev, "snapshot": snapshot}
    if cfg.display != "auto":
        display = makers[cfg.display]()
        display.open()
        return display, "configured"

    reasons: list[str] = []
    candidates: list[str] = []
    if cam is not None:
        candidates.append("drm")
    else:
        reasons.append("no picamera2 camera")
    if not os.path.exists(cfg.fb_device):
        reasons.append(f"{cfg.fb_device} not found")
    elif not os.access(cfg.fb_device, os.W_OK):
        reasons.append(f"{cfg.fb_device} not writable (add the user to the video group)")
    else:
        candidates.append("fbdev")
    candidates.append("snapshot")
    for kind in candidates:
        display = makers[kind]()
        try:
            display.open()
        except Exception as err:
            reasons.append(f"{kind} failed: {err}")
            continue
        if kind == "drm":
            reasons.append("a picamera2 camera is open")
        elif kind == "fbdev":
            reasons.append(f"{cfg.fb_device} is writable")
        return display, "auto: " + "; ".join(reasons)
    raise EdgeError("overlay: no display could be opened (" + "; ".join(reasons) + ")")


__all__ = ["Display", "NullDisplay", "RecordingDisplay", "SnapshotDisplay", "FbdevDisplay", "DrmDisplay",
           "FbGeometry", "read_fb_geometry", "letterbox_rect", "pick_display"]
