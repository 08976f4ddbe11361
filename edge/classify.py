"""Classify a video file offline: the live pipeline's engine on a file, 5 fps by timestamp."""

from __future__ import annotations

import logging
from pathlib import Path

from edge.capture.opencv import OpenCVSource
from edge.config import ModelConfig
from edge.engine import Engine
from edge.errors import EdgeError
from edge.pipeline import Pipeline

logger = logging.getLogger(__name__)


def classify_file(video: str, cfg: ModelConfig, top: int = 5, every: float | None = None,
                  engine: Engine | None = None) -> dict:
    """Run a file through the pipeline the daemon runs (no smoothing, no rules); the final top-k and a
    timeline of the running top-1. The learned classes of model.head / --head are labels too."""
    if top < 1 or (every is not None and every <= 0):
        raise ValueError("top must be >= 1 and every > 0")
    pipeline = Pipeline.for_model(cfg, engine, top=top)
    pipeline.reset()
    src = OpenCVSource.file(video, paced=False)
    frames = 0
    timeline = []
    next_mark = every if every else None
    pred = None
    with src:
        for frame in src.sampled(pipeline.sampler.accept):
            pred, _ = pipeline.step(frame)
            frames += 1
            if next_mark is not None and frame.t + 1e-6 >= next_mark:
                timeline.append({"t": round(frame.t, 2), **pred.top[0].as_dict()})
                while next_mark <= frame.t + 1e-6:
                    next_mark += every
    if pred is None:
        raise EdgeError(f"video file {video} has no decodable frames")
    return {
        "video": str(video),
        "model": pipeline.engine.describe(),
        "frames": frames,
        "top": [s.as_dict() for s in pred.top[:top]],
        "timeline": timeline,
        "warnings": clip_warnings(frames, frame.t, src.duration, pipeline.engine.fps,
                                  getattr(cfg, "window_seconds", 5.0)),
    }


def clip_warnings(frames: int, last_t: float, declared: float, fps: float, window_seconds: float) -> list[str]:
    """Why an answer may rest on too little: fewer model frames than the state window holds, or a
    file that ends well before the length its container declares (truncated, or a broken tail)."""
    out = []
    window = max(1, round(window_seconds * fps))
    if frames < window:
        out.append(f"only {frames} frame(s) at {fps:g} fps, fewer than the {window} of the model's "
                   f"{window_seconds:g} s window: the answer rests on {frames / fps:.1f} s of video")
    end = last_t + 1.0 / fps
    if declared > 0 and end < declared - max(0.5, 0.05 * declared):
        out.append(f"the video ends at {last_t:.1f} s but declares {declared:.1f} s: truncated or damaged, "
                   "the rest was not classified")
    return out


def format_result(result: dict) -> str:
    lines = [f"{Path(result['video']).name}: {result['frames']} frames at 5 fps, model {result['model']}"]
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    if result["timeline"]:
        lines.append("timeline (running top-1):")
        lines += [f"  {p['t']:7.1f}s  {p['score']:.3f}  {p['label']}" for p in result["timeline"]]
        lines.append("top:")
    width = max(len(p["label"]) for p in result["top"])
    for p in result["top"]:
        bar = "#" * int(round(p["score"] * 30))
        lines.append(f"  {p['score']:.3f}  {p['label']:<{width}}  {bar}")
    return "\n".join(lines)


