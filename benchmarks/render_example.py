"""Render the overlay on a synthetic frame: writes docs/overlay-example.png and prints render times.

    python -m benchmarks.render_example [--out docs/overlay-example.png] [--repeat 200]

The frame is drawn here (a gradient, a floor and a few shapes): no camera,
video or model is needed. The times are for ``render`` (a frame copy plus the
panel and banner) and ``render_layer`` (the drm overlay) at common sizes, then
for showing a 640x480 frame on a 1080p fbdev (a file here: letterbox, convert,
one pwrite) and as a snapshot JPEG.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from edge.engine import Scored
from edge.sinks.base import Prediction
from edge.sinks.overlay import render, render_layer
from edge.smoothing import Event

REPO = Path(__file__).resolve().parent.parent


def synthetic_frame(h: int, w: int) -> np.ndarray:
    """A calm indoor-looking scene: sky-to-wall gradient, a floor, a window and a figure."""
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    frame = np.empty((h, w, 3), np.uint8)
    frame[..., 0] = (150 + 60 * y - 20 * x).clip(0, 255)
    frame[..., 1] = (160 + 40 * y).clip(0, 255)
    frame[..., 2] = (185 - 30 * y + 20 * x).clip(0, 255)
    floor = int(h * 0.72)
    frame[floor:] = (120, 96, 72)
    s = h / 480
    cv2.rectangle(frame, (int(w * 0.62), int(h * 0.12)), (int(w * 0.86), int(h * 0.45)), (215, 235, 250), -1)
    cv2.rectangle(frame, (int(w * 0.62), int(h * 0.12)), (int(w * 0.86), int(h * 0.45)), (90, 80, 70), max(1, int(4 * s)))
    cx = int(w * 0.45)
    cv2.circle(frame, (cx, int(h * 0.36)), int(24 * s), (230, 190, 160), -1)
    cv2.rectangle(frame, (cx - int(30 * s), int(h * 0.36 + 26 * s)), (cx + int(30 * s), int(h * 0.62)), (60, 90, 160), -1)
    cv2.line(frame, (cx - int(12 * s), int(h * 0.62)), (cx - int(40 * s), floor + int(20 * s)), (40, 40, 60), max(1, int(12 * s)))
    cv2.line(frame, (cx + int(12 * s), int(h * 0.62)), (cx + int(50 * s), floor + int(10 * s)), (40, 40, 60), max(1, int(12 * s)))
    return frame


def example_prediction(frame: np.ndarray) -> Prediction:
    from edge.capture.base import Frame

    top = [Scored("dancing ballet", 0.81), Scored("stretching leg", 0.11), Scored("tai chi", 0.04)]
    fall = Event(rule="dancing", phase="start", t=40.0, score=0.7, start=40.0, peak=0.8, duration=0.0)
    return Prediction(t=52.4, wall=time.mktime((2024, 5, 17, 14, 32, 7, 0, 0, -1)), seq=262,
                      probs=np.zeros(3), top=top, smoothed=np.zeros(3), smoothed_top=top,
                      active={"dancing": fall}, frame=Frame(frame, 52.4, 262), model_fps=4.8, drops=3)


def bench(repeat: int) -> None:
    for h, w in ((480, 640), (720, 1280), (1080, 1920)):
        frame = synthetic_frame(h, w)
        p = example_prediction(frame)
        for name, fn in (("render", lambda: render(frame, p)), ("render_layer", lambda: render_layer((h, w), p))):
            fn()
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn()
            ms = (time.perf_counter() - t0) / repeat * 1000
            print(f"{name:13s} {w}x{h}: {ms:6.2f} ms")
    bench_displays(max(1, repeat // 5))


def bench_displays(repeat: int) -> None:
    """One annotated 640x480 frame through fbdev (to a file standing in for a 1080p screen) and snapshot."""
    import tempfile

    from edge.sinks.displays import FbdevDisplay, SnapshotDisplay

    frame = render(synthetic_frame(480, 640), example_prediction(synthetic_frame(480, 640)))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for bpp in (16, 32):
            sysfs = d / f"fb{bpp}"
            sysfs.mkdir()
            (sysfs / "virtual_size").write_text("1920,1080")
            (sysfs / "bits_per_pixel").write_text(str(bpp))
            (d / f"dev{bpp}").write_bytes(bytes(1920 * 1080 * bpp // 8))
            displays = [(f"fbdev {bpp} bpp 1920x1080", FbdevDisplay(d / f"dev{bpp}", sysfs, blank_on_close=False))]
            if bpp == 32:
                displays.append(("snapshot jpeg", SnapshotDisplay(d / "snap.jpg")))
            for name, display in displays:
                display.open()
                display.show(frame, 0.0)
                t0 = time.perf_counter()
                for i in range(repeat):
                    display.show(frame, float(i))
                ms = (time.perf_counter() - t0) / repeat * 1000
                display.close()
                print(f"{name:28s} 640x480 frame: {ms:6.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "overlay-example.png"))
    ap.add_argument("--size", default="1280x720", help="WxH of the example image")
    ap.add_argument("--repeat", type=int, default=100, help="renders per timing (0: no timings)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    frame = synthetic_frame(h, w)
    image = render(frame, example_prediction(frame))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(args.out, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"could not write {args.out}")
    print(f"wrote {args.out} ({w}x{h})")
    if args.repeat > 0:
        bench(args.repeat)


if __name__ == "__main__":
    main()
