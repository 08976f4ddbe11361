"""How fast does each state policy follow a change of action, and does it last?

Streams are built in memory from the shared labelled clips (../shared/videos),
decoded once at 5 fps and looped (never written anywhere). For each policy:

- ice->pancake: ~30 s of carving ice, then flipping pancake: seconds after the
  switch until the top-1 is right (first time / for good), and the right label's
  probability 5 s after the switch;
- pancake->ice: the reverse switch (first time, probability +5 s);
- 9 min of ice, then pancake: the same after a long run (a sum that saturates or
  drifts shows here);
- top-1 on every labelled clip alone, from a reset (as `edge classify` gives it).

The backbone runs once per stream (its per-frame feature does not depend on the
policy, see edge/split.py); each policy then pools those features and runs the
head, so the table is exactly what the engine answers. ``cumulative`` is the
original model bit for bit (its own int8 running sum).

Run: .venv/bin/python benchmarks/state_policies.py [--model-dir DIR] [--stress-minutes 9]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.capture.opencv import read_frames  # noqa: E402
from edge.model import StreamModel  # noqa: E402
from edge.prediction import softmax  # noqa: E402
from edge.states import ExactEma, ExactWindow  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "videos"
FPS = 5.0
AFTER = 5.0  # seconds after a switch at which the confidence is read


# --------------------------------------------------------------------------- streams (shared with events.py)


def labelled_clips(folder: Path = VIDEOS) -> dict[str, str]:
    """file name -> true label, from labels.csv."""
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        return {row["file"]: row["label"] for row in csv.DictReader(f)}


def decode(path: Path, fps: float = FPS) -> list[np.ndarray]:
    return [f.pixels for f in read_frames(str(path), fps)]


def looped(segments: list[tuple[list[np.ndarray], float]], fps: float = FPS) -> Iterator[np.ndarray]:
    """Each (frames, seconds): the clip's frames looped for that long, back to back."""
    for frames, seconds in segments:
        for k in range(int(round(seconds * fps))):
            yield frames[k % len(frames)]


class Features:
    """One backbone pass over a stream: per-frame features and the original model's cumulative means."""

    def __init__(self, model: StreamModel, frames: Iterable[np.ndarray]) -> None:
        model.loop_head_pool = True
        model.reset()
        feats, cums = [], []
        for frame in frames:
            feats.append(model.advance(frame).copy())
            cums.append(model.pool_mean(np.empty(model.feature_size, np.float32)))
        model.reset()
        self.features, self.cumulative = np.stack(feats), np.stack(cums)


Pooling = Callable[[int], "ExactWindow | ExactEma | None"]  # feature size -> a pool (None: cumulative)


def policies(fps: float = FPS) -> list[tuple[str, Pooling]]:
    rows: list[tuple[str, Pooling]] = [("cumulative", lambda d: None)]
    for seconds in (4, 5, 6):
        w = round(seconds * fps)
        rows.append((f"window {seconds} s (W={w})", lambda d, w=w: ExactWindow(w, d)))
    for half in (1.5, 2, 3):
        rows.append((f"ema half-life {half:g} s", lambda d, h=half * fps: ExactEma(h, d)))
    return rows


def probabilities(model: StreamModel, feats: Features, pooling: Pooling) -> np.ndarray:
    """The engine's probabilities, frame by frame, for one policy on one stream."""
    pool = pooling(model.feature_size)
    if pool is None:
        pooled: Iterable[np.ndarray] = feats.cumulative
    else:
        pooled = (pool.push(f) for f in feats.features)
    return np.stack([softmax(model.head(p)) for p in pooled])


# --------------------------------------------------------------------------- measures


def follow(probs: np.ndarray, start: int, right: int, fps: float = FPS) -> tuple[float | None, float | None, float]:
    """Seconds from frame ``start`` until the top-1 is ``right`` (first, for good) and its probability AFTER s later."""
    ok = probs[start:].argmax(axis=1) == right
    hits, misses = np.flatnonzero(ok), np.flatnonzero(~ok)
    first = (hits[0] + 1) / fps if len(hits) else None
    # held: from the first frame after the last wrong one (None: still wrong at the end)
    last_wrong = misses[-1] if len(misses) else -1
    held = (last_wrong + 2) / fps if last_wrong < len(ok) - 1 else None
    at = min(len(probs) - 1, start + int(AFTER * fps) - 1)
    return first, held, float(probs[at, right])


def seconds(x: float | None) -> str:
    return "never" if x is None else f"{x:.1f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=os.environ.get("EDGE_MODEL_DIR", str(ROOT / "models")))
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds of each action in the switch streams")
    ap.add_argument("--stress-minutes", type=float, default=9.0, help="minutes of carving ice before the last switch")
    args = ap.parse_args()
    model_path = Path(args.model_dir) / "movinet_a0_stream_int8.tflite"
    labels_path = Path(args.model_dir) / "kinetics600_label_map.txt"
    if not model_path.exists() or not VIDEOS.is_dir():
        print(f"needs the A0 model in {args.model_dir} (./install.sh, or --model-dir) and {VIDEOS}", file=sys.stderr)
        return 2
    model = StreamModel(model_path, labels_path)
    if not model.is_split:
        print(f"{model.name} is not split ({model.split_reason})", file=sys.stderr)
        return 2
    truth = labelled_clips()
    clips = {name: decode(VIDEOS / name) for name in truth}
    ice, pancake = clips["carving_ice.mp4"], clips["flipping_a_pancake.mkv"]
    i_ice, i_pan = model.labels.index("carving ice"), model.labels.index("flipping pancake")
    n = round(args.seconds * FPS)
    streams = {
        "ice->pancake": Features(model, looped([(ice, args.seconds), (pancake, args.seconds)])),
        "pancake->ice": Features(model, looped([(pancake, args.seconds), (ice, args.seconds)])),
        "stress": Features(model, looped([(ice, args.stress_minutes * 60), (pancake, args.seconds)])),
    }
    stress_at = round(args.stress_minutes * 60 * FPS)
    alone = {name: Features(model, frames) for name, frames in clips.items()}
    print(f"A0 int8, {model.backend}, {FPS:g} fps; switch streams {args.seconds:g} s + {args.seconds:g} s; "
          f"stress {args.stress_minutes:g} min of ice then pancake; {len(alone)} labelled clips")
    print()
    print(f"| policy | ice->pancake: first / held, p +{AFTER:g} s | pancake->ice: first, p +{AFTER:g} s | "
          f"after {args.stress_minutes:g} min of ice: first / held, p +{AFTER:g} s | top-1 per clip |")
    print("|---|---|---|---|---|")
    for name, pooling in policies():
        f1, h1, p1 = follow(probabilities(model, streams["ice->pancake"], pooling), n, i_pan)
        f2, _, p2 = follow(probabilities(model, streams["pancake->ice"], pooling), n, i_ice)
        f3, h3, p3 = follow(probabilities(model, streams["stress"], pooling), stress_at, i_pan)
        right = []
        for clip, feats in alone.items():
            top = int(probabilities(model, feats, pooling)[-1].argmax())
            right.append(model.labels[top] == truth[clip])
        marks = " ".join("+" if r else "-" for r in right)
        print(f"| {name} | {seconds(f1)} / {seconds(h1)}, {p1:.2f} | {seconds(f2)}, {p2:.2f} | "
              f"{seconds(f3)} / {seconds(h3)}, {p3:.2f} | {sum(right)}/{len(right)} ({marks}) |")
    print()
    print("top-1 per clip, in labels.csv order: " + ", ".join(truth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
