"""``edge bench``: the real pipeline on frames from a file, stage by stage.

Prints the cost per model frame of each stage (decode, preprocess, invoke of
the backbone, state copy, head (window + classifier invoke), postprocess,
sinks), peak RSS, the memory in use between frame 1,000 and the last frame
(:func:`memory_sample`: anonymous RSS after glibc's free heap is handed back,
sampled :data:`MEMORY_SAMPLES` times, so allocator noise is not read as a leak),
and the engine's ratio: the whole per-frame path (preprocess, backbone, state loop,
window, head, softmax, smoothing, top-k; not decode, not sinks) over a raw
``invoke()`` of the ORIGINAL, unsplit model on the same frames in the same run
(it runs beside the engine, its states looped, only its invoke timed). Numbers,
not pass/fail: targets are checked by reading them, never by a timed test.

``edge bench --all-models`` times every installed model for a short run (one
thread) and recommends the largest one that leaves headroom in the 5 fps
budget; the result is cached (:func:`cache_path`) for ``edge doctor``, which
imports this module for the cache location only: the heavy imports live in the
functions that run a benchmark.
"""

from __future__ import annotations

import datetime
import gc
import json
import logging
import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

from edge.atomic import write_bytes_atomic
from edge.board import board_name
from edge.errors import EdgeError
from edge.heap import malloc_trim

if TYPE_CHECKING:
    from edge.config import ModelConfig
    from edge.engine import Engine

logger = logging.getLogger(__name__)

STAGES = ("decode", "preprocess", "invoke", "state_copy", "head", "postprocess", "sinks")
MODEL_STAGES = ("preprocess", "invoke", "state_copy", "head")
BUDGET_LIMIT = 0.5  # --all-models: the largest model under this share of the frame budget is recommended
ALL_MODELS_FRAMES = 300
CACHE_FILE = "bench.json"
MEMORY_SAMPLES = 20  # memory samples between growth_from and the last frame (the trend is fitted through them)
SYSTEM_STATE_DIR = Path("/var/lib/edge")  # the service's StateDirectory, read by doctor from a shell


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


def memory_sample() -> dict[str, float]:
    """The process's memory now: ``rss`` as it reads (VmRSS), ``in_use`` and Python's ``objects``.

    ``in_use`` is the anonymous RSS after ``gc.collect()`` and ``malloc_trim(0)``:
    glibc keeps freed memory (frames, mostly) inside its heap, where a later
    allocation may not fit, so the plain RSS steps up by a few MB at random
    moments and stays there without anything being leaked. Handing those free
    pages back first leaves what is really in use; ``free_heap`` is what it gave
    back. Where there is no glibc, ``in_use`` is the plain anonymous RSS. Under
    ``PYTHONTRACEMALLOC=1``, ``traced`` is the memory Python's own objects hold.
    """
    gc.collect()
    rss, anon = rss_mb(), rss_mb("RssAnon")
    trim = malloc_trim()
    if trim is not None:
        trim(0)
    in_use = rss_mb("RssAnon")
    sample = {"rss": rss, "in_use": in_use, "free_heap": max(0.0, anon - in_use), "objects": len(gc.get_objects())}
    if tracemalloc.is_tracing():
        sample["traced"] = tracemalloc.get_traced_memory()[0] / 2**20
    return sample


def trend(frames: list[int], values: list[float], per: int = 10000) -> float | None:
    """Least-squares slope of ``values`` over ``frames``, per ``per`` frames; None under three samples."""
    if len(frames) < 3 or len(set(frames)) < 2:
        return None
    import numpy as np

    return float(np.polyfit(np.asarray(frames, dtype=float), np.asarray(values, dtype=float), 1)[0]) * per


def sample_points(frames: int, growth_from: int, samples: int = MEMORY_SAMPLES) -> set[int]:
    """Frames after which memory is sampled: the first, ``growth_from``, then evenly up to the last."""
    start = growth_from if 0 < growth_from < frames else 1
    step = max(1, (frames - start) // samples)
    return {1, start, frames, *range(start, frames, step)}


def default_video() -> Path | None:
    """The shared pancake clip beside a checkout (the dev machine and CI), or None: then --video is needed."""
    candidate = Path(__file__).resolve().parent.parent.parent / "shared" / "videos" / "flipping_a_pancake.mkv"
    return candidate if candidate.exists() else None


def run_bench(cfg: ModelConfig, video: str | os.PathLike[str], frames: int = 10000,
              growth_from: int = 1000, engine: Engine | None = None) -> dict:
    import numpy as np

    from edge.capture.opencv import OpenCVSource
    from edge.config import Config, LogSinkConfig
    from edge.engine import Engine
    from edge.model import StreamModel
    from edge.pipeline import Pipeline
    from edge.sinks import build as build_sink
    from edge.sinks.base import SinkContext

    engine = engine or Engine(cfg)
    first = engine.model
    original = StreamModel(first.path, threads=first.threads, preprocess=first.preprocess_mode, split=False)
    src = OpenCVSource.file(str(video), loop=True, paced=False)
    tmp = tempfile.TemporaryDirectory(prefix="edge-bench-")
    log = LogSinkConfig(path=str(Path(tmp.name) / "bench.jsonl"), prediction_every=0)
    pipeline = Pipeline.build(Config(model=cfg, sinks=[log]), engine)  # what the daemon's inference thread runs
    runner = build_sink(log, SinkContext(labels=engine.labels))
    runner.start()
    totals = dict.fromkeys(STAGES, 0.0)
    # preallocated and written now: lists growing by a float a frame, or np.zeros' untouched pages filling
    # in as they are written, would show up in the memory growth this bench reports
    per_frame_total, per_frame_path, per_frame_original = (np.full(frames, 0.0) for _ in range(3))
    memory: dict[int, dict[str, float]] = {}
    sample_at = sample_points(frames, growth_from)
    n = 0
    try:
        with src:
            it = src.sampled(pipeline.sampler.accept)
            while n < frames:
                t0 = time.perf_counter()
                frame = next(it, None)
                t1 = time.perf_counter()
                if frame is None:
                    raise EdgeError(f"video file {video} has no decodable frames")
                logits = engine.step(frame.pixels)
                t2 = time.perf_counter()
                pred, events = pipeline.predict(frame, logits)
                t3 = time.perf_counter()
                for ev in events:
                    runner.submit_event(ev, pred)
                runner.submit(pred)
                t4 = time.perf_counter()
                times = engine.times
                totals["decode"] += t1 - t0
                totals["preprocess"] += times.preprocess
                totals["invoke"] += times.invoke
                totals["state_copy"] += times.state_copy
                totals["head"] += times.head
                totals["postprocess"] += t3 - t2
                totals["sinks"] += t4 - t3
                per_frame_total[n] = t4 - t1
                per_frame_path[n] = t3 - t1
                original.advance(frame.pixels)  # the yardstick: only its invoke() is counted
                per_frame_original[n] = original.times.invoke
                n += 1
                if n % 50 == 0 or n in sample_at:  # let the log sink keep up, as it would at 5 fps
                    runner.drain(5.0)
                if n in sample_at:  # after the drain: predictions waiting in the queue hold their frames
                    memory[n] = memory_sample()
    finally:
        runner.close()
        tmp.cleanup()
    original.close()
    # measured around the whole step, not summed from the stage times (an ensemble's are one member's)
    per_frame_total, per_frame_path, per_frame_original = per_frame_total[:n], per_frame_path[:n], per_frame_original[:n]
    inference = float(per_frame_total.sum())
    path, raw = float(per_frame_path.sum()), float(per_frame_original.sum())
    start = min(sample_at)
    if growth_from in memory and growth_from < n:
        start = growth_from
    grown = sorted(k for k in memory if k >= start)
    first, last = memory[start], memory[grown[-1]]
    return {
        "model": engine.describe(),
        "backend": str(engine.model.backend),
        "threads": cfg.threads,
        "video": str(video),
        "frames": n,
        "per_frame_ms": {s: round(totals[s] / n * 1000, 4) for s in STAGES},
        "inference_ms": round(inference / n * 1000, 4),
        "path_ms": round(path / n * 1000, 4),
        "original_invoke_ms": round(raw / n * 1000, 4),
        "median_frame_ms": round(float(np.median(per_frame_total)) * 1000, 4),
        "median_path_ms": round(float(np.median(per_frame_path)) * 1000, 4),
        "median_original_invoke_ms": round(float(np.median(per_frame_original)) * 1000, 4),
        "ratio_to_original": round(path / raw, 3),
        "backbone_to_original": round(totals["invoke"] / raw, 3),  # the rest of the ratio is the work around it
        "median_ratio_to_original": round(float(np.median(per_frame_path)) / float(np.median(per_frame_original)), 3),
        "budget_share_5fps": round(inference / n * cfg.fps, 4),
        "split": engine.split,
        "peak_rss_mb": round(rss_mb("VmHWM"), 1),
        "rss_anon_mb": round(rss_mb("RssAnon"), 1),  # the process's own memory, without mapped library files
        "rss_mb": {str(k): round(memory[k]["rss"], 1) for k in sorted(memory)},
        "rss_growth_between": [start, grown[-1]],
        "in_use_mb": {str(k): round(memory[k]["in_use"], 2) for k in sorted(memory)},
        "in_use_growth_mb": round(last["in_use"] - first["in_use"], 2),
        "in_use_trend_mb": _rounded(trend(grown, [memory[k]["in_use"] for k in grown])),  # per 10,000 frames
        "memory_samples": len(grown),
        "free_heap_mb": round(max(memory[k]["free_heap"] for k in grown), 2),  # the most malloc_trim gave back
        "malloc_trim": malloc_trim() is not None,
        "objects_growth": last["objects"] - first["objects"],  # gc-tracked Python objects
        "traced_growth_mb": (round(last["traced"] - first["traced"], 3)  # PYTHONTRACEMALLOC=1 only
                             if "traced" in last and "traced" in first else None),
    }


def _rounded(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


def format_bench(r: dict) -> str:
    lines = [f"edge bench: {r['model']} on {Path(r['video']).name}, {r['frames']} frames, {r['backend']}, "
             f"{r['threads']} thread(s)"]
    lines.append("per model frame (mean ms):")
    for stage, ms in r["per_frame_ms"].items():
        where = "capture thread" if stage == "decode" else "inference thread"
        lines.append(f"  {stage:<12} {ms:8.3f}   ({where})")
    lines.append(f"  {'total':<12} {r['inference_ms']:8.3f}   (inference thread, without decode)")
    lines.append(f"engine path (preprocess .. top-k, no sinks) {r['path_ms']:.3f} ms vs the original model's raw invoke() "
                 f"{r['original_invoke_ms']:.3f} ms on the same frames: ratio {r['ratio_to_original']:.3f} "
                 f"(medians {r['median_ratio_to_original']:.3f})" + ("" if r["split"] else "; model not split"))
    around = r["ratio_to_original"] - r["backbone_to_original"]
    lines.append(f"  = backbone invoke {r['backbone_to_original']:.3f} + the work around it {around:.3f} "
                 "(preprocess, state copy, head, postprocess: a fixed cost, a smaller share where invoke is slower)")
    lines.append(f"share of the 5 fps budget: {r['budget_share_5fps'] * 100:.1f} %")
    lines.append(f"peak RSS {r['peak_rss_mb']:.1f} MB (anonymous {r['rss_anon_mb']:.1f} MB, the rest is mapped "
                 "library files)")
    lines.extend(format_memory(r))
    return "\n".join(lines)


def format_memory(r: dict) -> list[str]:
    """The memory lines: what is in use (the leak check), then the free heap a plain RSS reading also counts."""
    a, b = r["rss_growth_between"]
    slope = "" if r["in_use_trend_mb"] is None else f", trend {r['in_use_trend_mb']:+.2f} MB per 10,000 frames"
    traced = r.get("traced_growth_mb")
    traced = "" if traced is None else f", their memory {traced:+.3f} MB (tracemalloc)"
    lines = [f"memory in use, frames {a}..{b}: {r['in_use_growth_mb']:+.2f} MB{slope} ({r['memory_samples']} "
             f"samples); Python objects {r['objects_growth']:+d}{traced}"]
    if r["malloc_trim"]:
        lines.append("  (anonymous RSS once malloc_trim has handed back the freed memory glibc keeps in its heap, up "
                     f"to {r['free_heap_mb']:.2f} MB at these samples: a plain RSS reading counts it, so it steps up "
                     "and down by a few MB at random, with or without a leak)")
    else:
        lines.append("  (anonymous RSS: no glibc malloc_trim here, so freed memory the allocator keeps is counted)")
    return lines


# --------------------------------------------------------------------------- --all-models: which model fits this board


def cache_path() -> Path:
    """Where ``edge bench --all-models`` saves its result: ``$STATE_DIRECTORY`` (systemd), else the user cache."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / CACHE_FILE
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "edge" / CACHE_FILE


def cache_paths() -> list[Path]:
    """Where ``edge doctor`` looks for a saved result: where this user would save it, then the service's."""
    paths = [cache_path(), SYSTEM_STATE_DIR / CACHE_FILE]
    return list(dict.fromkeys(paths))


def load_cached(paths: list[Path] | None = None) -> tuple[dict, Path] | None:
    """The newest saved ``--all-models`` result that reads as JSON, with its path; None when there is none."""
    found = []
    for path in paths if paths is not None else cache_paths():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("models"), list):
            found.append((str(data.get("created", "")), data, path))
    if not found:
        return None
    _, data, path = max(found, key=lambda x: x[0])
    return data, path


def save_cached(result: dict, path: Path | None = None) -> Path:
    """Write the result atomically (temporary file + rename) to ``path`` or :func:`cache_path`."""
    path = path or cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, json.dumps(result, indent=1).encode("utf-8"))
    except OSError as err:
        raise EdgeError(f"cannot save the benchmark to {path}: {err.strerror or err}") from None
    return path


def installed_models(directory: str | os.PathLike[str] | None = None) -> list:
    """Manifest models installed in the model folder (edge.models rows), smallest first (manifest order)."""
    from edge import models

    return [r for r in models.list_models(directory) if r.kind == "model" and r.installed]


def run_all_models(cfg: ModelConfig, video: str | os.PathLike[str], frames: int = ALL_MODELS_FRAMES,
                   limit: float = BUDGET_LIMIT, directory: str | os.PathLike[str] | None = None) -> dict:
    """Time every installed model with one thread and recommend the largest one under ``limit`` of the budget.

    Each model is timed with the configured state policy (the per-frame cost of
    the inference thread: preprocess, backbone invoke, state copy, head,
    postprocess, sinks). The share is of the frame budget at ``cfg.fps`` (200 ms
    a frame at 5 fps); decoding runs in the capture thread and is not counted.
    "Largest" is manifest order (a0 < a1 < a2), which is also the order of
    accuracy and cost.
    """
    from edge.engine import Engine

    rows = installed_models(directory)
    if not rows:
        raise EdgeError('no model installed to benchmark: run "edge models fetch a0" (or a1, a2)')
    results = []
    for row in rows:
        logger.info("benchmarking %s (%d frames, 1 thread)", row.name, frames)
        stream_cfg = cfg.model_copy(update={"name": row.path, "labels": None, "threads": 1, "ensemble": []})
        engine = Engine(stream_cfg)
        r = run_bench(stream_cfg, video, frames=frames, growth_from=frames, engine=engine)
        stream_ms = sum(r["per_frame_ms"][s] for s in MODEL_STAGES)
        frame_ms = r["inference_ms"]
        results.append({
            "name": row.name,
            "file": row.file,
            "input": list(engine.model.input_size),
            "sha256_status": row.status,
            "invoke_ms": r["per_frame_ms"]["invoke"],
            "original_invoke_ms": r["original_invoke_ms"],
            "stream_ms": round(stream_ms, 4),
            "split": engine.split,
            "frame_ms": round(frame_ms, 4),
            "budget_share": round(frame_ms * cfg.fps / 1000, 4),
        })
    fitting = [m for m in results if m["budget_share"] < limit]
    best = fitting[-1]["name"] if fitting else None
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "board": board_name(),
        "machine": platform.machine(),
        "backend": r["backend"],
        "threads": 1,
        "fps": cfg.fps,
        "state_policy": cfg.state_policy,
        "video": str(video),
        "frames": frames,
        "limit": limit,
        "models": results,
        "recommended": best,
    }


def recommendation_text(r: dict) -> str:
    """One sentence: which model, and why."""
    limit = f"{r['limit'] * 100:.0f} %"
    if r["recommended"]:
        return (f"{r['recommended']}: the largest installed model under {limit} of the {r['fps']:g} fps budget "
                "(the rest is headroom for capture, sinks and thermal throttling)")
    smallest = r["models"][0]
    return (f"none: even {smallest['name']} uses {smallest['budget_share'] * 100:.0f} % of the {r['fps']:g} fps budget "
            f"(limit {limit}); expect dropped frames, or use a faster board")


def format_all_models(r: dict) -> str:
    budget_ms = 1000 / r["fps"]
    lines = [f"edge bench --all-models: {r['board']}, {r['backend']}, 1 thread, {r['frames']} frames each of "
             f"{Path(r['video']).name}, state policy {r['state_policy']}",
             f"budget: {budget_ms:.0f} ms a frame at {r['fps']:g} fps (decoding is in the capture thread, not counted)",
             f"  {'model':<6} {'input':<8} {'split':<5} {'invoke ms':>9} {'stream ms':>9} {'frame ms':>9} {'budget':>7}"]
    for m in r["models"]:
        size = f"{m['input'][0]}x{m['input'][1]}"
        split = "yes" if m.get("split", True) else "no"
        lines.append(f"  {m['name']:<6} {size:<8} {split:<5} {m['invoke_ms']:>9.2f} {m['stream_ms']:>9.2f} "
                     f"{m['frame_ms']:>9.2f} {m['budget_share'] * 100:>6.1f}%")
    lines.append(f"recommended: {recommendation_text(r)}")
    return "\n".join(lines)
