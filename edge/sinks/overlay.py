"""OverlaySink: the device's own screen. The current frame with what the model thinks of it.

``render(frame, prediction)`` draws onto a copy of the frame:

- a dark translucent panel (top left) with the time (HH:MM:SS), the model's
  frames per second and the frames dropped so far, then the top ``k`` smoothed
  labels, each with its score and a bar whose length is proportional to it;
- when watch events are active, an amber banner along the bottom with each
  rule's name and how long it has been active (source seconds).

Sizes are proportional to the frame height (480 rows = 1x), so the text is
legible from 640x480 to 1920x1080. ``render_layer`` draws the same panel and
banner onto a transparent RGBA layer for a preview that shows the live video
itself (drm). Both are pure, cheap functions: a handful of OpenCV calls, one
frame copy (or one layer allocation), one blend of the panel rectangle.

The sink renders only when its display is due (see ``edge.sinks.displays``), so
a snapshot every 5 s costs one render every 5 s, not one per prediction.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import Any, Callable

import cv2
import numpy as np

from edge.prediction import Prediction
from edge.sinks.base import Sink, SinkContext
from edge.sinks.displays import NullDisplay, pick_display

logger = logging.getLogger(__name__)

# Colours, RGB. Public so tests (and anyone restyling) can find what was drawn.
TEXT_RGB = (255, 255, 255)
DIM_TEXT_RGB = (200, 200, 200)
BAR_RGB = (64, 200, 96)
TRACK_RGB = (72, 72, 72)
BANNER_RGB = (255, 176, 0)  # amber
BANNER_TEXT_RGB = (0, 0, 0)
PANEL_DARKEN = 0.35  # frame: panel pixels are multiplied by this
PANEL_ALPHA = 160  # layer: panel opacity (0..255)

FONT = cv2.FONT_HERSHEY_SIMPLEX


class _Layout:
    """Pixel sizes for one frame size, proportional to its height."""

    def __init__(self, h: int, w: int) -> None:
        s = max(h / 480.0, 0.25)
        self.margin = round(8 * s)
        self.pad = round(8 * s)
        self.font = 0.55 * s
        self.small = 0.45 * s
        self.thick = max(1, round(0.9 * s))
        self.gap = round(5 * s)
        self.bar_h = max(2, round(7 * s))
        self.panel_w = max(1, min(w - 2 * self.margin, round(330 * s)))
        (_, self.text_h), self.descent = cv2.getTextSize("Hg", FONT, self.font, self.thick)
        (_, self.small_h), _ = cv2.getTextSize("Hg", FONT, self.small, self.thick)
        self.banner_h = min(h, round(34 * s))
        self.banner_font = 0.6 * s
        self.banner_thick = max(1, round(1.2 * s))


@lru_cache(maxsize=16)
def _layout(h: int, w: int) -> _Layout:
    return _Layout(h, w)


@lru_cache(maxsize=1024)
def _fit(text: str, scale: float, thick: int, max_w: int) -> str:
    """``text``, cut short with '..' to fit ``max_w`` pixels."""
    if cv2.getTextSize(text, FONT, scale, thick)[0][0] <= max_w:
        return text
    while text and cv2.getTextSize(text + "..", FONT, scale, thick)[0][0] > max_w:
        text = text[:-1]
    return text.rstrip() + ".."


def _clock(now: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(now))


def _active_text(p: Prediction) -> str:
    parts = []
    for rule, ev in sorted(p.active.items()):
        secs = max(0.0, p.t - ev.start)
        parts.append(f"{rule} {secs:.0f}s" if secs < 60 else f"{rule} {int(secs // 60)}m{int(secs % 60):02d}s")
    return "ALERT  " + "  |  ".join(parts)


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _paint(img: np.ndarray, p: Prediction, top: int, now: float, darken: bool = True) -> tuple[Rect, Rect | None]:
    """Draws the panel and banner onto the RGB ``img`` in place; returns their rectangles (banner: None).

    ``darken``: blend the panel over the frame (False for a layer, whose panel is a black canvas).
    """
    h, w = img.shape[:2]
    L = _layout(h, w)
    scored = list(p.smoothed_top[:top])
    inner_w = max(1, L.panel_w - 2 * L.pad)

    # the panel
    x0, y0 = L.margin, L.margin
    entry_h = L.text_h + L.descent + L.gap + L.bar_h + L.gap
    panel_h = L.pad + L.small_h + 2 * L.gap + len(scored) * entry_h + L.pad
    x1, y1 = min(w, x0 + L.panel_w), min(h, y0 + panel_h)
    if darken and x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        roi[...] = cv2.convertScaleAbs(roi, alpha=PANEL_DARKEN)

    # header: time, model fps, drops
    tx = x0 + L.pad
    y = y0 + L.pad + L.small_h
    header = f"{_clock(now)}   {p.model_fps:.1f} fps   drops {p.drops}"
    cv2.putText(img, _fit(header, L.small, L.thick, inner_w), (tx, y), FONT, L.small, DIM_TEXT_RGB, L.thick,
                cv2.LINE_AA)
    y += 2 * L.gap

    # one entry per label: "label   82%", then the bar
    for s in scored:
        score = min(max(float(s.score), 0.0), 1.0)
        pct = f"{score * 100:.0f}%"
        pct_w = cv2.getTextSize(pct, FONT, L.font, L.thick)[0][0]
        y += L.text_h
        label = _fit(str(s.label), L.font, L.thick, max(1, inner_w - pct_w - L.pad))
        cv2.putText(img, label, (tx, y), FONT, L.font, TEXT_RGB, L.thick, cv2.LINE_AA)
        cv2.putText(img, pct, (tx + inner_w - pct_w, y), FONT, L.font, TEXT_RGB, L.thick, cv2.LINE_AA)
        y += L.descent + L.gap
        cv2.rectangle(img, (tx, y), (tx + inner_w - 1, y + L.bar_h - 1), TRACK_RGB, -1)
        filled = round(score * inner_w)
        if filled > 0:
            cv2.rectangle(img, (tx, y), (tx + filled - 1, y + L.bar_h - 1), BAR_RGB, -1)
        y += L.bar_h + L.gap

    # the banner
    banner = None
    if p.active:
        by0 = h - L.banner_h
        banner = (0, by0, w, h)
        img[by0:h, :] = BANNER_RGB
        text = _fit(_active_text(p), L.banner_font, L.banner_thick, max(1, w - 2 * L.pad))
        (_, th), _ = cv2.getTextSize(text, FONT, L.banner_font, L.banner_thick)
        cv2.putText(img, text, (L.pad, by0 + (L.banner_h + th) // 2), FONT, L.banner_font, BANNER_TEXT_RGB,
                    L.banner_thick, cv2.LINE_AA)
    return (x0, y0, x1, y1), banner


def render(frame_rgb: np.ndarray, prediction: Prediction, top: int = 3, now: float | None = None) -> np.ndarray:
    """A copy of ``frame_rgb`` (HxWx3 uint8 RGB) with the panel and, if events are active, the banner.

    ``now`` is the Unix time shown as HH:MM:SS (local time); default: when the
    prediction was made. The input frame is not modified.
    """
    out = np.array(frame_rgb, dtype=np.uint8, copy=True, order="C")
    _paint(out, prediction, top, prediction.wall if now is None else now)
    return out


def render_layer(size_hw: tuple[int, int], prediction: Prediction, top: int = 3,
                 now: float | None = None) -> np.ndarray:
    """The panel and banner on a transparent HxWx4 RGBA layer (alpha 0 elsewhere), for a live preview.

    Drawn in RGB on black, then given alpha: drawn pixels (text, bars, banner)
    opaque, the rest of the panel ``PANEL_ALPHA``. (OpenCV's anti-aliasing on a
    4-channel image writes coverage into alpha, which would punch holes around
    the text, so the layer is not drawn in RGBA directly.)
    """
    h, w = size_hw
    rgb = np.zeros((h, w, 3), np.uint8)
    (x0, y0, x1, y1), banner = _paint(rgb, prediction, top, prediction.wall if now is None else now, darken=False)
    alpha = np.zeros((h, w), np.uint8)
    panel = alpha[y0:y1, x0:x1]
    panel[...] = PANEL_ALPHA
    panel[cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY) > 0] = 255  # drawn (text, bars): opaque
    if banner is not None:
        alpha[banner[1]:banner[3], banner[0]:banner[2]] = 255
    return cv2.merge((*cv2.split(rgb), alpha))


class OverlaySink(Sink):
    """Draws predictions onto the device's screen (drm or fbdev) or a JPEG snapshot.

    ``display`` (tests) replaces the one ``cfg.display`` would pick; ``clock``
    paces the display (seconds, monotonic); ``fb_sysfs`` overrides the sysfs
    folder of ``cfg.fb_device`` (tests).
    """

    type = "overlay"

    def __init__(self, cfg: Any, ctx: SinkContext, *, display: NullDisplay | None = None,
                 clock: Callable[[], float] = time.monotonic, fb_sysfs: str | None = None) -> None:
        super().__init__(cfg, ctx)
        self.display = display
        self.clock = clock
        self.fb_sysfs = fb_sysfs
        self.reason = ""
        self.no_frame = 0  # predictions that came without a frame while a frame display was due
        self._lock = threading.Lock()
        self._closed = False

    def describe(self) -> str:
        return f"overlay:{self.display.describe()}" if self.display is not None else "overlay"

    def start(self) -> None:
        if self.display is not None:
            self.display.open()
            self.reason = self.reason or "given"
            return
        try:
            self.display, self.reason = pick_display(self.cfg, self.camera, sysfs_dir=self.fb_sysfs,
                                                     state_path=self.ctx.state_path)
        except Exception:
            self.display = NullDisplay()  # emit() then does nothing; the runner counts the start error
            raise
        logger.info("overlay: showing on %s (%s)", self.display.describe(), self.reason)

    def camera(self) -> Any:
        """The picamera2 camera open now (looked up on every call: the source may reopen it), or None."""
        return self.ctx.camera()

    def emit(self, p: Prediction) -> None:
        with self._lock:
            d = self.display
            if d is None or self._closed:
                return
            now = self.clock()
            if not d.due(now):
                return
            if d.layer:
                frame_hw = p.frame.pixels.shape[:2] if p.frame is not None else self.ctx.frame_size()
                image = render_layer(d.layer_size(frame_hw), p, top=self.cfg.top)
            elif p.frame is None:
                self.no_frame += 1
                return
            else:
                image = render(p.frame.pixels, p, top=self.cfg.top)
            d.show(image, now)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.display is not None:
                self.display.close()

    def status(self) -> dict[str, Any]:
        d = self.display
        return {"display": d.describe() if d is not None else None, "display_reason": self.reason,
                "frames_shown": d.shown if d is not None else 0, "no_frame": self.no_frame}
