"""RSS of `edge run` over a long run (a soak): does memory keep growing once everything is warm?

    timeout 1200 .venv/bin/python benchmarks/soak.py [--minutes 15] [--every 60] [--source two_people_1080p]

The daemon is the one benchmarks/memory.py measures (the real `edge run -c CONFIG`, A0 model, log
sink, the source looped and played in real time), from the same helpers. RSS (VmRSS, and its
anonymous and file-backed parts) is sampled every ``--every`` seconds; prints each sample, then the
first and last sample, the growth between them, and the peak (VmHWM). Numbers only: no pass/fail.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.memory import (SHARED, SIZES, make_source, start_daemon, status_of, stop_daemon,  # noqa: E402
                               vm, wait_running)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0, help="how long the daemon runs (default 15)")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between RSS samples (default 60)")
    ap.add_argument("--source", default="two_people_1080p", choices=["two_people_1080p", *SIZES],
                    help="the shared 1080p H.264 clip (default), or the demo clip scaled to one of these sizes")
    ap.add_argument("--code", default=str(REPO), help="the edge tree to run")
    args = ap.parse_args()
    models = SHARED / "models"
    if not (models / "movinet_a0_stream_int8.tflite").is_file():
        print(f"needs the shared model in {models}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edge-soak-") as tmp:
        folder = Path(tmp)
        if args.source == "two_people_1080p":
            video = SHARED / "videos" / "two_people_1080p.mp4"
        else:
            video = make_source(SHARED / "videos" / "carving_ice.mp4", SIZES[args.source], folder / "source.avi")
        if not video.is_file():
            print(f"needs {video}", file=sys.stderr)
            return 2
        proc = start_daemon(video, models, folder, Path(args.code))
        t0 = time.monotonic()
        samples: list[tuple[float, float]] = []
        try:
            for k in range(1, int(args.minutes * 60 / args.every) + 1):
                wait_running(proc, t0 + k * args.every - time.monotonic())
                samples.append((time.monotonic() - t0, vm(proc.pid, "VmRSS")))
                print(f"{samples[-1][0] / 60:5.1f} min: RSS {samples[-1][1]:6.1f} MB (anonymous "
                      f"{vm(proc.pid, 'RssAnon'):6.1f}, files {vm(proc.pid, 'RssFile'):5.1f})", flush=True)
            peak = vm(proc.pid, "VmHWM")
            snap = status_of(folder)
        finally:
            stop_daemon(proc)
    (t1, first), (t2, last) = samples[0], samples[-1]
    model = snap.get("model") or {}
    print(f"\n{video.name}, {args.minutes:g} min: RSS {first:.1f} MB at {t1 / 60:.1f} min, {last:.1f} MB at "
          f"{t2 / 60:.1f} min: {last - first:+.1f} MB; peak (VmHWM) {peak:.1f} MB; "
          f"{model.get('inferences')} inferences, {snap.get('frames_in', (snap.get('source') or {}).get('frames'))} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
