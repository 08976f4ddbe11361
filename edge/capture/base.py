"""The FrameSource protocol, the Frame it delivers and the errors it raises (the factory is edge.capture).

A frame carries RGB uint8 pixels (channel order is fixed once, in the source), a
capture timestamp in seconds since the source started (video time for files)
and a sequence number. ``read()`` returns the next frame, ``None`` at the end of
a file, and raises :class:`SourceError` when a camera stops delivering; the
capture supervisor (edge/capture/supervisor.py) then reopens it with backoff.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Frame:
    pixels: np.ndarray  # (H, W, 3) uint8 RGB
    t: float  # seconds since the source started (for files: the container's PTS)
    seq: int  # the source's own count; the capture supervisor keeps it, shifted only so it never goes back
    mono: float = 0.0  # time.monotonic() when the capture thread received it


class SourceError(Exception):
    """The source stopped delivering (read error, vanished device); it may come back."""


class FrameSource(Protocol):
    name: str  # e.g. "file:clip.mp4", "v4l2:/dev/video0", "picamera2"
    fps: float  # nominal frame rate (0 if unknown)
    realtime: bool  # frames arrive in real time (cameras, paced files)
    can_freeze: bool  # the same pixels for a while mean the device froze (a camera sensor; never a file or RTSP)

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


_SECRET_KEYS = re.compile(r"(?i)([?&;](?:password|passwd|pwd|pass|token|key|secret|auth)[^=&;]*=)[^&;#]*")


def redact(spec: str | None) -> str:
    """A source spec fit to show anyone: a URL loses its userinfo and the values of query keys
    that look like secrets (``rtsp://admin:pw@cam/s?token=x`` -> ``rtsp://cam/s?token=***``).

    Every name a source gets goes through here, so log lines, status.json, events and clip
    metadata never carry the password config.yaml keeps 0640 for.
    """
    if not spec:
        return ""
    scheme, sep, rest = spec.partition("://")
    if not sep:
        return spec
    # userinfo ends at the last '@' before the query: a password may hold an unencoded '/' (or '@'),
    # so a path holding '@' is cut too: a shorter name, never a leaked secret
    head = min(i for i in (rest.find("?"), rest.find("#"), len(rest)) if i >= 0)
    rest = rest[rest.rfind("@", 0, head) + 1:]
    return f"{scheme}://" + _SECRET_KEYS.sub(r"\1***", rest)


def short_name(name: str) -> str:
    """A source's name cut to what tells two apart in a merged log: ``clip.mp4``, ``video0``,
    ``cam.local:554/stream1``, ``picamera2`` (from ``file:/home/pi/clip.mp4``, ``v4l2:/dev/video0``, ...)."""
    kind, sep, spec = name.partition(":")
    if not sep or not spec:
        return name
    if kind == "rtsp":
        return spec.partition("://")[2] or spec
    if kind == "v4l2" and spec.isdigit():
        return f"video{spec}"
    return spec.rstrip("/").rsplit("/", 1)[-1]


def fit_within(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int] | None:
    """The size (w, h) a ``width`` x ``height`` frame is scaled to so it fits ``max_width`` x ``max_height``
    with its aspect kept, or None when it already fits (or no limit is set)."""
    if max_width <= 0 or max_height <= 0 or (width <= max_width and height <= max_height):
        return None
    scale = min(max_width / width, max_height / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def describe_spec(spec: str | None) -> str:
    """Guess the source kind from a --source value: picamera2, a URL, a device or a file."""
    if spec is None or spec == "auto":
        return "auto"
    if spec == "picamera2":
        return "picamera2"
    if "://" in spec:
        return "rtsp"
    if spec.isdigit() or spec.startswith("/dev/video"):
        return "v4l2"
    return "file"
