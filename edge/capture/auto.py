"""AutoSource: ``source.kind: auto``, the default: whatever camera is there, and a wait when none is.

Each :meth:`AutoSource.open` probes, in order, a CSI camera through picamera2 and
the first V4L2 capture device (the SoC's codec and ISP nodes on a Pi are not
cameras and are skipped). The first one found is opened and read from until it
fails; the next open probes again, so a USB camera plugged into another port, or
a ribbon cable reseated, is picked up. When nothing is found, ``open`` raises
:class:`SourceError` naming what it tried: the capture supervisor waits and
tries again with backoff, as for any camera that is not there (yet), instead of
the daemon exiting and systemd's start limit giving up on a camera that
enumerates late.

A probe is a callable ``(width, height, fps) -> FrameSource | str``: a source
(not yet open) or why there is none. Tests pass their own (a fake camera that
appears); :func:`default_probes` are the real ones.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Union

from edge.capture.base import Frame, FrameSource, SourceError

logger = logging.getLogger(__name__)

# V4L2 nodes a Raspberry Pi has without any camera: codecs, the ISP, the CSI receiver itself
SOC_V4L2 = ("bcm2835-codec", "bcm2835-isp", "pispbe", "rpivid", "rpi-hevc-dec", "rp1-cfe", "unicam")

Probe = Callable[[int, int, float], Union[FrameSource, str]]


def v4l2_devices(dev: str = "/dev", sysfs: str = "/sys/class/video4linux") -> list[tuple[str, str]]:
    """(path, driver name) of every /dev/videoN, in number order; the name is '' when sysfs has none."""
    out = []
    for path in sorted(Path(dev).glob("video[0-9]*"), key=lambda p: int(p.name[5:] or 0)):
        try:
            name = (Path(sysfs) / path.name / "name").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            name = ""
        out.append((str(path), name))
    return out


def probe_picamera(width: int, height: int, fps: float) -> FrameSource | str:
    from edge.capture.picamera import PicameraSource, camera_present
    from edge.capture.supervisor import read_timeout

    present, why = camera_present()
    if not present:
        return f"picamera2 ({why})"
    return PicameraSource(width=width, height=height, fps=fps, timeout=read_timeout(fps))


def probe_v4l2(width: int, height: int, fps: float) -> FrameSource | str:
    devices = v4l2_devices()
    capture = [path for path, name in devices if not name.startswith(SOC_V4L2)]
    if capture:
        from edge.capture.opencv import OpenCVSource

        return OpenCVSource.device(capture[0], width=width, height=height, fps=fps)
    if devices:
        return f"v4l2 (only the SoC's codec/ISP nodes: {', '.join(p for p, _ in devices)})"
    return "v4l2 (no /dev/video* device)"


def default_probes() -> list[Probe]:
    return [probe_picamera, probe_v4l2]


class AutoSource:
    """The first camera a probe finds (a FrameSource); SourceError from ``open`` while there is none."""

    realtime = True

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0,
                 probes: list[Probe] | None = None) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.probes = list(probes) if probes is not None else default_probes()
        self.inner: FrameSource | None = None
        self.name = "auto"
        self.tried = ""  # what the last open found missing, for status and the READY line

    @property
    def can_freeze(self) -> bool:
        return bool(getattr(self.inner, "can_freeze", True))

    @property
    def camera(self) -> Any:
        """The open picamera2 camera, for the overlay's DRM preview (None for any other camera)."""
        return getattr(self.inner, "camera", None)

    def open(self) -> None:
        self.close()
        tried = []
        for probe in self.probes:
            found = probe(self.width, self.height, self.fps)
            if isinstance(found, str):
                tried.append(found)
                continue
            found.open()  # a camera that is there but will not open (busy, broken): SourceError, retried
            self.inner, self.name, self.tried = found, found.name, ""
            self.fps = found.fps or self.fps
            return
        self.tried = "; ".join(tried)
        raise SourceError(f"no camera found, tried: {self.tried}: connect one (it is picked up when it "
                          "appears), or set source.kind/spec (a file or an rtsp:// URL)")

    def read(self) -> Frame | None:
        if self.inner is None:
            raise SourceError("no camera is open")
        return self.inner.read()

    def close(self) -> None:
        inner, self.inner = self.inner, None
        if inner is not None:
            inner.close()

    def __enter__(self) -> AutoSource:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["AutoSource", "SOC_V4L2", "default_probes", "probe_picamera", "probe_v4l2", "v4l2_devices"]
