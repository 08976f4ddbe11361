"""``edge bench``: the real pipeline on frames from a file, stage by stage.

Prints the cost per model frame of each stage (decode, preprocess, invoke, state
copy, postprocess, sinks), the ratio of the inference thread's whole per-frame
cost to the ``invoke()`` inside it (same frames, same run), peak RSS and the RSS
growth between frame 1,000 and the last frame. Numbers, not pass/fail: targets
are checked by reading them, never by a timed test.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.capture.opencv import OpenCVSource
from edge.config import LogSinkConfig, ModelConfig, SmoothingConfig
from edge.engine import Engine
from edge.errors import EdgeError
from edge.model import softmax
from edge.sampler import FrameSampler
from edge.sinks import build as build_sink
from edge.sinks.base import Prediction, SinkContext
from edge.smoothing import RuleTracker, Smoother

logger = logging.getLogger(__name__)

STAGES = ("decode", "preprocess", "invoke", "state_copy", "postprocess", "sinks")


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory from /proc/self/status (VmRSS now, VmHWM peak), in MB."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def default_video() -> Path | None:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "shared" / "videos" / "flipping_a_pancake.mkv",
                      here / "tests" / "fixtures" / "sample.mp4"):
        if candidate.exists():
            return candidate
    return None


def run_bench(cfg: ModelConfig, video: str | os.PathLike[str], frames: int = 10000,
              growth_from: int = 1000, engine: Engine | None = None) -> dict:
    engine = engine or Engine(cfg)
    src = OpenCVSource.file(str(video), loop=True, paced=False)
    sampler = FrameSampler(cfg.fps)
    smoother = Smoother.from_config(SmoothingConfig())
    tracker = RuleTracker([], engine.labels)
    tmp = tempfile.TemporaryDirectory(prefix="edge-bench-")
    runner = build_sink(LogSinkConfig(path=str(Path(tmp.name) / "bench.jsonl"), prediction_every=0),
                        SinkContext(labels=engine.labels))
    runner.start()
    totals = dict.fromkeys(STAGES, 0.0)
    per_frame_total: list[float] = []
    per_frame_invoke: list[float] = []
    rss_at: dict[int, float] = {}
    n = 0
    try:
        with src:
            it = src.sampled(sampler.accept)
            while n < frames:
                t0 = time.perf_counter()
                frame = next(it, None)
                t1 = time.perf_counter()
                if frame is None:
                    raise EdgeError(f"video file {video} has no decodable frames")
                logits = engine.step(frame.pixels)
                t2 = time.perf_counter()
                probs = softmax(logits)
                smoothed = smoother.update(probs)
                events = tracker.update(frame.t, smoothed)
                pred = Prediction(t=frame.t, wall=time.time(), seq=frame.seq, probs=probs, top=engine.top(probs, 5),
                                  smoothed=smoothed, smoothed_top=engine.top(smoothed, 5), events=events, frame=frame)
                t3 = time.perf_counter()
                runner.submit(pred)
                t4 = time.perf_counter()
                times = engine.times
                totals["decode"] += t1 - t0
                totals["preprocess"] += times.preprocess
                totals["invoke"] += times.invoke
                totals["state_copy"] += times.state_copy
                totals["postprocess"] += t3 - t2
                totals["sinks"] += t4 - t3
                per_frame_total.append(t4 - t1)
                per_frame_invoke.append(times.invoke)
                n += 1
                if n in (1, growth_from, frames):
                    rss_at[n] = rss_mb()
                if n % 50 == 0:  # let the log sink keep up, as it would at 5 fps
                    runner.drain(5.0)
    finally:
        runner.close()
        tmp.cleanup()
    bare = _bare_invoke(engine, 200)
    inference = sum(totals[s] for s in STAGES if s != "decode")
    start = growth_from if growth_from in rss_at and growth_from < frames else 1
    return {
        "model": engine.describe(),
        "backend": str(engine.model.backend),
        "threads": cfg.threads,
        "video": str(video),
        "frames": n,
        "per_frame_ms": {s: round(totals[s] / n * 1000, 4) for s in STAGES},
        "inference_ms": round(inference / n * 1000, 4),
        "median_frame_ms": round(float(np.median(per_frame_total)) * 1000, 4),
        "median_invoke_ms": round(float(np.median(per_frame_invoke)) * 1000, 4),
        "bare_invoke_ms": round(bare * 1000, 4),
        "ratio_to_invoke": round(inference / totals["invoke"], 3),
        "ratio_with_decode": round((inference + totals["decode"]) / totals["invoke"], 3),
        "budget_share_5fps": round(inference / n * cfg.fps, 4),
        "peak_rss_mb": round(rss_mb("VmHWM"), 1),
        "rss_anon_mb": round(rss_mb("RssAnon"), 1),  # the process's own memory, without mapped library files
        "rss_mb": {str(k): round(v, 1) for k, v in sorted(rss_at.items())},
        "rss_growth_mb": round(rss_at.get(frames, rss_at[max(rss_at)]) - rss_at[start], 2),
        "rss_growth_between": [start, max(rss_at)],
    }


def _bare_invoke(engine: Engine, n: int) -> float:
    """Median of ``n`` bare ``invoke()`` calls on the last frame's buffers (no Python around them)."""
    model = engine.model
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        model.invoke_only()
        samples.append(time.perf_counter() - t0)
    model.reset()
    return float(np.median(samples))


def format_bench(r: dict) -> str:
    lines = [f"edge bench: {r['model']} on {Path(r['video']).name}, {r['frames']} frames, {r['backend']}, "
             f"{r['threads']} thread(s)"]
    lines.append("per model frame (mean ms):")
    for stage, ms in r["per_frame_ms"].items():
        where = "capture thread" if stage == "decode" else "inference thread"
        lines.append(f"  {stage:<12} {ms:8.3f}   ({where})")
    lines.append(f"  {'total':<12} {r['inference_ms']:8.3f}   (inference thread, without decode)")
    lines.append(f"ratio to invoke(): {r['ratio_to_invoke']:.3f} (with decode {r['ratio_with_decode']:.3f}); "
                 f"bare invoke() median {r['bare_invoke_ms']:.3f} ms")
    lines.append(f"share of the 5 fps budget: {r['budget_share_5fps'] * 100:.1f} %")
    lines.append(f"peak RSS {r['peak_rss_mb']:.1f} MB (anonymous {r['rss_anon_mb']:.1f} MB, the rest is mapped "
                 f"library files); RSS growth frames {r['rss_growth_between'][0]}.."
                 f"{r['rss_growth_between'][1]}: {r['rss_growth_mb']:+.2f} MB")
    return "\n".join(lines)
