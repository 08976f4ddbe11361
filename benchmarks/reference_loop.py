"""Our per-frame path next to the common reference loop and a bare ``invoke()``, on the same frames.

    python -m benchmarks.reference_loop [--frames 1000] [--model a0] [--threads 1] [--json]

The clip (the shared pancake clip by default) is decoded once, at 5 fps by
timestamp, into memory and looped to ``--frames`` frames, so decoding is not
timed and every path sees exactly the same pixels. Three paths, each with its
own interpreter on the same model file and the same thread count:

(a) edge: ``Engine.step`` + ``softmax`` + ``top_k`` (what the daemon's inference
    thread does per frame, state policy included);
(b) the reference loop, re-implemented minimally after the official Raspberry Pi
    video-classification example (tensorflow/examples,
    lite/examples/video_classification/raspberry_pi/video_classifier.py):
    ``cv2.resize``, a float32 conversion divided by 255, the signature runner
    called with the image and the whole state dict, its outputs kept as the next
    state dict, a softmax, and a Python ``sorted()`` of all the classes into
    (label, probability) pairs, of which the top 5 are kept;
(c) a bare ``invoke()`` on a frame already in the input buffer (the floor: no
    Python around the model at all).

The paths run interleaved in blocks of ``--block`` frames (a, b, c, a, b, c ...)
so clock-speed changes and thermal throttling fall on all three alike. Each
frame is timed on its own with ``perf_counter``; the medians and means are per
frame. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge import models as model_store
from edge import runtime
from edge.capture.opencv import read_frames
from edge.config import ModelConfig
from edge.engine import Engine
from edge.model import StreamModel, softmax

DEFAULT_CLIP = Path(__file__).resolve().parent.parent.parent / "shared" / "videos" / "flipping_a_pancake.mkv"
FPS = 5.0


class ReferenceLoop:
    """The per-frame work of the official example's VideoClassifier, and nothing else."""

    def __init__(self, model_path: Path, labels: list[str], threads: int) -> None:
        interp = runtime.backend().interpreter(model_path=str(model_path), num_threads=threads)
        self.runner = interp.get_signature_runner()
        details = self.runner.get_input_details()
        shape = [int(x) for x in details["image"]["shape"]]  # [1, 1, h, w, 3]
        self.height, self.width = shape[2], shape[3]
        self.labels = labels
        self.states = {name: np.zeros(d["shape"], dtype=d["dtype"]) for name, d in details.items() if name != "image"}

    def classify(self, frame: np.ndarray) -> list[tuple[str, float]]:
        image = cv2.resize(frame, (self.width, self.height))
        image = np.float32(image[np.newaxis, np.newaxis]) / 255
        outputs = self.runner(**self.states, image=image)
        logits = outputs.pop("logits")
        self.states = outputs
        exp = np.exp(np.squeeze(logits, axis=0))
        probs = exp / np.sum(exp)
        order = sorted(range(len(probs)), key=lambda k: probs[k], reverse=True)
        pairs = [(self.labels[k], float(probs[k])) for k in order]
        return pairs[:5]


def decode(video: Path, fps: float = FPS) -> list[np.ndarray]:
    frames = [f.pixels for f in read_frames(str(video), fps=fps)]
    if not frames:
        sys.exit(f"reference_loop: no frames decoded from {video}")
    return frames


def run(video: Path, model: str, frames: int, threads: int, policy: str, block: int) -> dict:
    clip = decode(video)
    feed = [clip[i % len(clip)] for i in range(frames)]

    engine = Engine(ModelConfig(name=model, threads=threads, state_policy=policy))
    path, labels_path = model_store.resolve(model)
    reference = ReferenceLoop(path, engine.labels, threads)
    bare = StreamModel(path, labels_path, threads=threads, split=False)  # the original model's invoke()
    bare.step(clip[0])  # a real frame and real states in its buffers

    def ours(frame: np.ndarray) -> list:
        probs = softmax(engine.step(frame))
        return engine.top(probs, 5)  # top_k: argpartition, then sort only 5

    def raw(frame: np.ndarray) -> None:
        bare.invoke_only()

    paths = {"ours": ours, "reference": reference.classify, "invoke": raw}
    for fn in paths.values():  # warm-up: first invokes allocate and fill caches
        for frame in clip[:10]:
            fn(frame)
    engine.reset()
    reference.states = {k: np.zeros_like(v) for k, v in reference.states.items()}

    times: dict[str, list[float]] = {name: [] for name in paths}
    last: dict[str, object] = {}
    clock = time.perf_counter
    for start in range(0, frames, block):
        for name, fn in paths.items():
            samples = times[name]
            for frame in feed[start:start + block]:
                t0 = clock()
                out = fn(frame)
                samples.append(clock() - t0)
            last[name] = out

    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    mean = {k: statistics.fmean(v) * 1000 for k, v in times.items()}
    return {
        "video": str(video),
        "decoded_frames": len(clip),
        "frame_size": list(clip[0].shape[:2]),
        "frames": frames,
        "block": block,
        "model": engine.describe(),
        "backend": str(runtime.backend()),
        "threads": threads,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "median_ms": {k: round(v, 4) for k, v in med.items()},
        "mean_ms": {k: round(v, 4) for k, v in mean.items()},
        "ours_over_invoke": {"median": round(med["ours"] / med["invoke"], 3),
                             "mean": round(mean["ours"] / mean["invoke"], 3)},
        "reference_over_ours": {"median": round(med["reference"] / med["ours"], 3),
                                "mean": round(mean["reference"] / mean["ours"], 3)},
        "final_top1": {"ours": last["ours"][0].label, "reference": last["reference"][0][0]},
    }


def format_result(r: dict) -> str:
    names = {"ours": "(a) edge: Engine.step + softmax + top_k", "reference": "(b) reference loop",
             "invoke": "(c) bare invoke()"}
    lines = [f"reference_loop: {r['model']}, {r['backend']}, {r['threads']} thread(s), {r['machine']}",
             f"{r['frames']} frames: {r['decoded_frames']} frames of {Path(r['video']).name} "
             f"({r['frame_size'][1]}x{r['frame_size'][0]}) decoded at 5 fps, looped; interleaved in blocks of {r['block']}",
             f"  {'per frame':<42} {'median ms':>10} {'mean ms':>10}"]
    for key, name in names.items():
        lines.append(f"  {name:<42} {r['median_ms'][key]:>10.3f} {r['mean_ms'][key]:>10.3f}")
    lines.append(f"  ours / bare invoke():  {r['ours_over_invoke']['median']:.3f} (median)  "
                 f"{r['ours_over_invoke']['mean']:.3f} (mean)")
    lines.append(f"  reference / ours:      {r['reference_over_ours']['median']:.3f} (median)  "
                 f"{r['reference_over_ours']['mean']:.3f} (mean)")
    lines.append(f"  final top-1: ours {r['final_top1']['ours']!r}, reference {r['final_top1']['reference']!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, default=DEFAULT_CLIP, help="clip to decode at 5 fps (default: the pancake clip)")
    p.add_argument("--model", default="a0", help="a0, a1, a2 or a path (default a0)")
    p.add_argument("--frames", type=int, default=1000, help="frames per path (default 1000)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads for all three paths (default 1)")
    p.add_argument("--state-policy", default="window", choices=["window", "ema", "cumulative"],
                   help="our engine's policy (default window, the daemon's)")
    p.add_argument("--block", type=int, default=50, help="frames per path before switching to the next (default 50)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if not args.video.exists():
        p.error(f"{args.video} does not exist: pass --video")
    result = run(args.video, args.model, args.frames, args.threads, args.state_policy, max(1, args.block))
    print(json.dumps(result) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
