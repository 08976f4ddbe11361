"""How long learned classes cost: fitting a head file, and scoring one frame's window feature.

The examples are synthetic 480-d window features (A0's head feature size), so
this needs no model and no clips: the cost depends on the sizes only (classes,
examples per class, feature size), not on what the features show.

- fit: the class means of every example (what each `edge learn add` recomputes);
- refit: fit plus the leave-one-recording-out threshold search (`add`, `remove`,
  `eval --save` run this once);
- score: one frame's learned scores (cosine to every class mean, softmax with the
  unknown answer) as the pipeline runs it per frame, in microseconds;
- load: reading and checking the head file (start and every SIGHUP reload).

Each figure is the median of ``--repeat`` runs, with the min-max spread.

Run: .venv/bin/python benchmarks/learn_head.py [--classes 10] [--per-class 15] [--recordings 3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge import learn  # noqa: E402


def synthetic_head(classes: int, per_class: int, recordings: int, size: int, seed: int = 0) -> learn.Head:
    rng = np.random.default_rng(seed)
    centres = rng.gamma(1.0, 1.0, size=(classes, size)).astype(np.float32)  # non-negative, as A0's features
    head = learn.Head(size, "synthetic", "0" * 64)
    emb, examples = [], []
    for c in range(classes):
        for k in range(per_class):
            emb.append(centres[c] + rng.gamma(1.0, 0.5, size=size).astype(np.float32))
            examples.append(learn.Example(f"class{c}", f"c{c}-r{k % recordings}", f"/c{c}/{k}.mp4", 0.0, 5.0))
    head.examples, head.embeddings, head.classes = examples, np.array(emb), [f"class{c}" for c in range(classes)]
    return head


def timed(fn, n: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=15, help="examples per class (3 recordings x 5 windows)")
    ap.add_argument("--recordings", type=int, default=3, help="recordings per class")
    ap.add_argument("--size", type=int, default=480, help="feature size (A0: 480)")
    ap.add_argument("--frames", type=int, default=5000, help="frames scored per run")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    head = synthetic_head(args.classes, args.per_class, args.recordings, args.size)
    learned = learn.LearnedLabels(head, "add", [f"k{i}" for i in range(600)], "bench.head")
    head.refit()
    features = np.random.default_rng(1).gamma(1.0, 1.0, size=(64, args.size)).astype(np.float32)
    probs = np.full(600, 1 / 600, np.float32)
    runs: dict[str, list[float]] = {"fit ms": [], "refit ms": [], "score us/frame": [], "load ms": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = head.save(Path(tmp) / "bench.head")
        for _ in range(args.repeat):
            runs["fit ms"].append(1e3 * timed(head._fit_means, 20))
            runs["refit ms"].append(1e3 * timed(head.refit, 3))
            k = iter(range(args.frames))
            runs["score us/frame"].append(
                1e6 * timed(lambda: learned.apply(probs, features[next(k) % 64]), args.frames))
            runs["load ms"].append(1e3 * timed(lambda: learn.Head.load(path), 20))
        size_kb = path.stat().st_size / 1024
    print(f"{args.classes} classes x {args.per_class} examples ({args.recordings} recordings each), "
          f"{args.size}-d features, head file {size_kb:.0f} KB; median (min-max) of {args.repeat} runs")
    for name, values in runs.items():
        print(f"  {name:15s} {statistics.median(values):9.3f}  ({min(values):.3f}-{max(values):.3f})")


if __name__ == "__main__":
    main()
