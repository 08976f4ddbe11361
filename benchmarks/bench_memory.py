"""Where `edge bench`'s RSS growth comes from: repeated runs, with glibc's malloc tuned two ways.

    python -m benchmarks.bench_memory [--frames 10000] [--repeat 3] [--video FILE] [--only default]

Runs `edge bench --json` in a fresh process per run (the shared pancake clip by
default) under three allocator settings and prints, per run, the memory in use
from frame 1,000 to the last (anonymous RSS after ``malloc_trim``), its trend, the
most free heap memory ``malloc_trim`` gave back at a sample (what a plain RSS
reading counts too) and Python's object count, then each setting's median and spread:

- ``default``: glibc as it comes;
- ``arena_max=1``: ``MALLOC_ARENA_MAX=1`` (one heap for every thread: per-thread arenas are not the cause);
- ``mmap_128k``: ``MALLOC_MMAP_THRESHOLD_=131072`` (a fixed threshold: every frame-sized buffer is its own
  mmap, returned whole when freed, instead of a block in the heap once glibc has raised its dynamic threshold).

A leak grows the memory in use in every setting; allocator noise is free heap
memory, and it shrinks with a fixed mmap threshold. Numbers, not pass/fail. One heavy process at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "default": {},
    "arena_max=1": {"MALLOC_ARENA_MAX": "1"},
    "mmap_128k": {"MALLOC_MMAP_THRESHOLD_": "131072"},
}


def run_once(frames: int, video: str | None, env: dict[str, str], timeout: float) -> dict:
    cmd = [sys.executable, "-m", "edge", "bench", "--json", "--frames", str(frames)]
    if video:
        cmd += ["--video", video]
    done = subprocess.run(cmd, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"edge bench failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):+.2f} (min {min(values):+.2f}, max {max(values):+.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--video", default=None, help="default: the shared pancake clip (as edge bench)")
    p.add_argument("--only", choices=sorted(SETTINGS), action="append", help="run only these settings")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    args = p.parse_args(argv)
    results: dict[str, list[dict]] = {}
    for name in args.only or list(SETTINGS):
        for i in range(args.repeat):
            r = run_once(args.frames, args.video, SETTINGS[name], args.timeout)
            results.setdefault(name, []).append(r)
            a, b = r["rss_growth_between"]
            trend = "n/a" if r["in_use_trend_mb"] is None else f"{r['in_use_trend_mb']:+.2f}"
            print(f"{name:<12} run {i + 1}: frames {a}..{b}: in use {r['in_use_growth_mb']:+.2f} MB (trend {trend} "
                  f"per 10,000 frames), free heap up to {r['free_heap_mb']:.2f} MB, Python objects "
                  f"{r['objects_growth']:+d}", flush=True)
    print("summary (MB):")
    for name, runs in results.items():
        print(f"  {name:<12} in use {spread([r['in_use_growth_mb'] for r in runs])}; "
              f"free heap {spread([r['free_heap_mb'] for r in runs])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
