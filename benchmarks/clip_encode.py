"""Encode cost per frame and clip size of each clip encoder, on the same frames in one run.

    .venv/bin/python benchmarks/clip_encode.py [--video PATH] [--size 640x480] [--fps 10] [--repeat 3]

Frames: 10 s of a shared clip scaled to --size (real footage), and the same
number of frames of uniform noise (the worst case for any encoder). Each
encoder writes a whole clip through the clip sink's own writers
(edge/sinks/encoders.py) into a temp folder; the time covers the colour
conversion, encoding, muxing and closing. Printed: median ms per frame over
--repeat runs (min-max), the CPU ms per frame (all the encoder's threads: what
it takes from the model on a busy board) and the MB of the 10 s clip. Nothing is
written outside the temp folder.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.capture.opencv import read_frames  # noqa: E402
from edge.sinks import encoders  # noqa: E402

SECONDS = 10.0


def real_frames(video: Path, size: tuple[int, int], fps: float) -> list[np.ndarray]:
    """SECONDS of ``video`` at ``fps`` (looped if shorter, frames picked by timestamp), scaled to ``size``."""
    src = [(f.t, f.pixels) for f in read_frames(str(video))]
    length = src[-1][0] + (src[-1][0] - src[0][0]) / max(1, len(src) - 1)
    out, j = [], 0
    for k in range(int(SECONDS * fps)):
        t = (k / fps) % length
        j = max(i for i, (ft, _) in enumerate(src) if ft <= t + 1e-9) if t >= src[0][0] else 0
        out.append(cv2.resize(src[j][1], size, interpolation=cv2.INTER_CUBIC))
    return out


def noise_frames(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size[1], size[0], 3), np.uint8) for _ in range(n)]


def encode(encoder: str, frames: list[np.ndarray], fps: float, folder: Path, crf: int,
           preset: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, bytes) of writing ``frames`` as one clip."""
    h, w = frames[0].shape[:2]
    path = folder / f"{encoder}.mp4"
    t0, c0 = time.perf_counter(), time.process_time()
    writer = encoders.open_writer(encoders.Choice(encoder), path, w, h, fps, crf, preset)
    for k, rgb in enumerate(frames):
        writer.write(rgb, k / fps)
    writer.close()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    size = path.stat().st_size
    path.unlink()
    return seconds, cpu, size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=REPO.parent / "shared" / "videos" / "cleaning_pool.mp4")
    ap.add_argument("--size", default="640x480", help="WxH the frames are scaled to")
    ap.add_argument("--fps", type=float, default=10.0, help="frames a second of the clip (the daemon's capture default: 10)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--crf", type=int, default=encoders.CRF, help="libx264 CRF (default: the clip sink's)")
    ap.add_argument("--preset", default=encoders.PRESET)
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if not args.video.is_file():
        print(f"no video at {args.video}: pass --video", file=sys.stderr)
        return 2
    real = real_frames(args.video, size, args.fps)
    sets = {"real": real, "noise": noise_frames(len(real), size)}
    usable = [e for e in encoders.CHAIN if not encoders.probe(e, *encoders.even(*size), args.fps)]
    print(f"{len(real)} frames ({SECONDS:.0f} s at {args.fps:g} fps) of {size[0]}x{size[1]}, real = {args.video.name} "
          f"scaled; PyAV {encoders.pyav_version() or '-'}, OpenCV {cv2.__version__}; libx264 {args.preset} crf {args.crf}; "
          f"{args.repeat} runs")
    print(f"{'encoder':<14}{'frames':<7}{'ms/frame (min-max)':>22}{'CPU ms/frame':>14}{'MB / 10 s':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for encoder in usable:
            for name, frames in sets.items():
                runs = [encode(encoder, frames, args.fps, folder, args.crf, args.preset) for _ in range(args.repeat)]
                ms = [1000 * s / len(frames) for s, _, _ in runs]
                cpu = statistics.median(1000 * c / len(frames) for _, c, _ in runs)
                print(f"{encoder:<14}{name:<7}{statistics.median(ms):>9.2f} ({min(ms):.2f}-{max(ms):.2f}){'':>3}"
                      f"{cpu:>14.2f}{runs[0][2] / 1e6:>11.2f}")
    missing = [e for e in encoders.CHAIN if e not in usable]
    if missing:
        print("not available here: " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
