"""Peak memory of `edge run` by source size: 640x480, 1080p, 4K (and the shared 1080p clip).

    .venv/bin/python benchmarks/memory.py [--seconds 20] [--repeat 3] [--keep DIR]

Each source is a file made from a shared clip (scaled up, looped to a few seconds, written
into a temp folder: nothing from ../shared is kept), played by the real daemon in real time
(`edge run`, paced, loop: true) with the A0 model and a log sink. The daemon's peak RSS is its
kernel high-water mark (VmHWM in /proc/PID/status), read just before it is stopped; the ring's
own byte count comes from status.json. Prints one line per run and a summary with each size's
peak as a ratio of the 640x480 run's (median of the repeats, and the spread).

The daemon runs as the unit runs it (`edge run -c CONFIG`, nothing added to its environment but
PYTHONPATH): what is measured here is what the service does. Before each run the capture
thread's work on that source is timed on its own (the source the daemon would open, read unpaced:
decode + scale to RGB), wall and CPU ms a frame: a decoder setting that saves memory must say
what it costs in speed. benchmarks/soak.py runs the same daemon for minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SIZES = {"640x480": (640, 480), "1080p": (1920, 1080), "4K": (3840, 2160)}


def make_source(clip: Path, size: tuple[int, int] | None, out: Path, seconds: float = 6.0, fps: float = 25.0) -> Path:
    """The clip scaled to ``size`` (None: as it is), looped to about ``seconds`` (MJPEG: quick to write at 4K).
    The RTSP tests serve one made here too (tests/rtsp.py)."""
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR) if size else bgr)
    cap.release()
    if not frames:
        raise RuntimeError(f"cannot read {clip}")
    size = size or (frames[0].shape[1], frames[0].shape[0])
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(int(seconds * fps)):
        writer.write(frames[i % len(frames)])
    writer.release()
    return out


def vm(pid: int, key: str) -> float:
    """A /proc/PID/status figure (VmRSS, VmHWM) in MB, 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def start_daemon(video: Path, models: Path, work: Path, code: Path) -> subprocess.Popen:
    """`edge run -c config.yaml` (the A0 model, a log sink, ``video`` looped and paced) from the tree ``code``."""
    status = work / "status.json"
    cfg = {"model": {"name": str(models / "movinet_a0_stream_int8.tflite"),
                     "labels": str(models / "kinetics600_label_map.txt")},
           "source": {"kind": "file", "spec": str(video), "loop": True},
           "sinks": [{"type": "log", "path": str(work / "edge.jsonl")}],
           "status": {"path": str(status)}}
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    status.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(code)}
    return subprocess.Popen([sys.executable, "-m", "edge", "run", "-c", str(path)], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_running(proc: subprocess.Popen, seconds: float) -> None:
    """Wait ``seconds``; exit with the daemon's last words if it ends meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            proc.wait(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is not None:
        raise SystemExit(f"edge run ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")


def stop_daemon(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def status_of(work: Path) -> dict:
    status = work / "status.json"
    return json.loads(status.read_text()) if status.exists() else {}


DECODE = """
import sys, time
from edge.capture import open_source
src = open_source("file", sys.argv[1], loop=True, paced=False)  # the daemon's source and size (640x480 default)
src.open()
for _ in range(10):  # opened, decoder threads started
    src.read()
n = int(sys.argv[2])
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(n):
    src.read()
print((time.perf_counter() - t0) / n * 1e3, (time.process_time() - c0) / n * 1e3)
"""


def decode_ms(video: Path, code: Path, frames: int = 200) -> tuple[float, float]:
    """Wall and CPU ms a frame of the capture thread's work on ``video`` (decode + scale to RGB), as the daemon
    from ``code`` would open it, read unpaced in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run([sys.executable, "-c", DECODE, str(video), str(frames)], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout.split()
    return float(out[0]), float(out[1])


def run_once(video: Path, models: Path, work: Path, seconds: float, code: Path) -> dict:
    wall_ms, cpu_ms = decode_ms(video, code)
    proc = start_daemon(video, models, work, code)
    try:
        wait_running(proc, seconds)
        peak = vm(proc.pid, "VmHWM")
        snap = status_of(work)
    finally:
        stop_daemon(proc)
    ring = snap.get("ring") or {}
    return {"peak_mb": round(peak, 1), "ring_mb": round((ring.get("bytes") or 0) / 2**20, 1),
            "ring_frames": ring.get("frames"), "inferences": (snap.get("model") or {}).get("inferences"),
            "decode_ms": wall_ms, "decode_cpu_ms": cpu_ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="how long each run lasts (default 20)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per source, interleaved (default 3)")
    ap.add_argument("--keep", default=None, help="write the sources here (and keep them) instead of a temp folder")
    ap.add_argument("--code", default=str(REPO), help="the edge tree to run (e.g. an older commit's `git archive`)")
    args = ap.parse_args()
    models = SHARED / "models"
    clip = SHARED / "videos" / "carving_ice.mp4"
    if not (models / "movinet_a0_stream_int8.tflite").is_file() or not clip.is_file():
        print(f"needs the shared model and clips in {SHARED}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edge-memory-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        sources = {name: make_source(clip, size, folder / f"{name}.avi") for name, size in SIZES.items()}
        hd = SHARED / "videos" / "two_people_1080p.mp4"
        if hd.is_file():
            sources["two_people_1080p"] = hd
        work = folder / "run"
        work.mkdir(exist_ok=True)
        results: dict[str, list[dict]] = {name: [] for name in sources}
        for k in range(args.repeat):  # interleaved, so a noisy minute hits every size alike
            for name, video in sources.items():
                r = run_once(video, models, work, args.seconds, Path(args.code))
                results[name].append(r)
                print(f"run {k + 1} {name:>16}: peak RSS {r['peak_mb']:7.1f} MB, ring {r['ring_mb']:5.1f} MB "
                      f"({r['ring_frames']} frames), {r['inferences']} inferences; "
                      f"decode {r['decode_ms']:.2f} ms a frame ({r['decode_cpu_ms']:.2f} CPU)", flush=True)
    base = statistics.median(r["peak_mb"] for r in results["640x480"])
    print(f"\npeak RSS of `edge run` ({args.seconds:g} s each, {args.repeat} runs, median [min-max]); "
          "ratio to 640x480:")
    for name, rs in results.items():
        peaks = [r["peak_mb"] for r in rs]
        med = statistics.median(peaks)
        print(f"  {name:>16}: {med:7.1f} MB [{min(peaks):.1f}-{max(peaks):.1f}]  x{med / base:.3f}")
    print("capture thread's work a frame (decode + scale to RGB, unpaced), median [min-max]:")
    for name, rs in results.items():
        wall, cpu = [r["decode_ms"] for r in rs], [r["decode_cpu_ms"] for r in rs]
        print(f"  {name:>16}: {statistics.median(wall):6.2f} ms [{min(wall):.2f}-{max(wall):.2f}] wall, "
              f"{statistics.median(cpu):6.2f} ms [{min(cpu):.2f}-{max(cpu):.2f}] CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
