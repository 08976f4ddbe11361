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

STEADY_SECONDS = 5.0  # the shortest span the shared clips are answered steadily on (docs/engine.md: the 5 s window)


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
        "warnings": clip_warnings(frames, frame.t, src.duration, pipeline.engine.fps, policy_name(pipeline.engine),
                                  cfg.window_seconds, cfg.half_life_seconds),
    }


def policy_name(engine: Engine) -> str:
    """The forgetting policy that really runs: window, ema or cumulative (a model that is not split runs
    cumulative whatever was asked; an ensemble's members all run the same one)."""
    policy = engine.ensemble.members[0] if engine.ensemble is not None else engine.policy
    return getattr(policy, "name", "cumulative")


def clip_warnings(frames: int, last_t: float, declared: float, fps: float, policy: str = "window",
                  window_seconds: float = 5.0, half_life_seconds: float = 2.0) -> list[str]:
    """Why an answer may rest on too little: fewer model frames than the policy weighs (the window's
    frames; two half-lives of the ema; ``STEADY_SECONDS`` for cumulative, which has no window), or a
    file that ends well before the length its container declares (truncated, or a broken tail)."""
    out = []
    short = f"only {frames} frame(s) at {fps:g} fps: the answer rests on {frames / fps:.1f} s of video"
    if policy == "window":
        need = max(1, round(window_seconds * fps))
        why = f"fewer than the {need} of the {window_seconds:g} s window"
    elif policy == "ema":
        need = max(1, round(2 * half_life_seconds * fps))
        why = f"less than two {half_life_seconds:g} s half-lives of the ema ({need} frames)"
    else:
        need = max(1, round(STEADY_SECONDS * fps))
        why = (f"the cumulative policy averages every frame from the start, and an answer on less than "
               f"{STEADY_SECONDS:g} s ({need} frames) is unsteady")
    if frames < need:
        out.append(f"{short}, {why}")
    end = last_t + 1.0 / fps
    if declared > 0 and end < declared - max(0.5, 0.05 * declared):
        out.append(f"the video ends at {last_t:.1f} s but declares {declared:.1f} s: truncated or damaged, "
                   "the rest was not classified")
    return out


def print_result(result: dict, as_json: bool = False) -> None:
    """The result on stdout (one JSON object, or the text); its warnings on stderr, so stdout stays parseable."""
    import json
    import sys

    for warning in result.get("warnings", []):
        print(f"warning: {Path(result['video']).name}: {warning}", file=sys.stderr)
    print(json.dumps(result, indent=None) if as_json else format_result(result))


def format_result(result: dict) -> str:
    """The text of a result; its warnings are printed apart (:func:`print_result`)."""
    lines = [f"{Path(result['video']).name}: {result['frames']} frames at 5 fps, model {result['model']}"]
    if result["timeline"]:
        lines.append("timeline (running top-1):")
        lines += [f"  {p['t']:7.1f}s  {p['score']:.3f}  {p['label']}" for p in result["timeline"]]
        lines.append("top:")
    width = max(len(p["label"]) for p in result["top"])
    for p in result["top"]:
        bar = "#" * int(round(p["score"] * 30))
        lines.append(f"  {p['score']:.3f}  {p['label']:<{width}}  {bar}")
    return "\n".join(lines)


