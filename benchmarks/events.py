"""Events, not just labels: when does a watch rule's event start and end, against the truth?

Builds a stream in memory from the shared labelled clips (../shared/videos,
decoded at 5 fps, looped; nothing written): other actions, with segments of one
watched action inside them. It runs the engine (the configured state policy),
the smoother and a watch rule on the watched label exactly as the daemon does,
and reports per watched segment the start latency (event start - action start)
and end lag (event end - action end), and the missed and false events.

Target (issue #9): every event found, started <= 3 s after its action began,
no false event, with the default config.

Run: .venv/bin/python benchmarks/events.py [--config FILE] [--watch flipping_a_pancake.mkv]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.state_policies import FPS, VIDEOS, decode, labelled_clips, looped  # noqa: E402
from edge import config as edge_config  # noqa: E402
from edge.config import WatchRule  # noqa: E402
from edge.engine import Engine  # noqa: E402
from edge.prediction import softmax  # noqa: E402
from edge.smoothing import RuleTracker, Smoother  # noqa: E402

START_LIMIT = 3.0  # seconds: the target start latency


def plan(watched: str, others: list[str], watch_seconds: float, other_seconds: float) -> list[tuple[str, float]]:
    """other, WATCHED, other, other, WATCHED, other ...: two watched segments inside the other actions."""
    seq = [others[0], watched, *others[1:3], watched, *others[3:]]
    return [(name, watch_seconds if name == watched else other_seconds) for name in seq]


def run(engine: Engine, smoother: Smoother, tracker: RuleTracker, frames) -> list:
    events = []
    for k, frame in enumerate(frames):
        t = k / FPS
        events += tracker.update(t, smoother.update(softmax(engine.step(frame))))
    events += tracker.end_all((k + 1) / FPS, "stopped")
    return events


def score(segments: list[tuple[float, float]], events: list, grace: float) -> tuple[list[dict], list]:
    """Match event (start, end) pairs to the watched segments: one row per segment, and the false events."""
    pairs, open_start = [], None
    for ev in events:
        if ev.phase == "start":
            open_start = ev.t
        else:
            pairs.append((open_start, ev.t))
    rows, used = [], set()
    for s, e in segments:
        match = next((i for i, (a, _) in enumerate(pairs) if i not in used and s <= a <= e + grace), None)
        if match is None:
            rows.append({"segment": (s, e), "start_latency": None, "end_lag": None})
            continue
        used.add(match)
        a, b = pairs[match]
        rows.append({"segment": (s, e), "start_latency": a - s, "end_lag": b - e})
    false = [p for i, p in enumerate(pairs) if i not in used]
    return rows, false


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=os.environ.get("EDGE_MODEL_DIR", str(ROOT / "models")))
    ap.add_argument("--config", default=None, help="config file whose model/smoothing sections and first watch "
                    "rule's thresholds are used (default: the built-in defaults)")
    ap.add_argument("--watch", default="flipping_a_pancake.mkv", help="the watched clip (its label is the rule)")
    ap.add_argument("--watch-seconds", type=float, default=10.0)
    ap.add_argument("--other-seconds", type=float, default=20.0)
    args = ap.parse_args()
    model_dir = Path(args.model_dir)
    if not (model_dir / "movinet_a0_stream_int8.tflite").exists() or not VIDEOS.is_dir():
        print(f"needs the A0 model in {model_dir} (./install.sh, or --model-dir) and {VIDEOS}", file=sys.stderr)
        return 2
    os.environ["EDGE_MODEL_DIR"] = str(model_dir)
    cfg = edge_config.load(args.config) if args.config else edge_config.Config()
    truth = labelled_clips()
    if args.watch not in truth:
        print(f"--watch: {args.watch} is not in {VIDEOS / 'labels.csv'} ({', '.join(truth)})", file=sys.stderr)
        return 2
    label = truth[args.watch]
    base = cfg.watch[0] if cfg.watch else WatchRule(name="watched", labels=[label])
    rule = base.model_copy(update={"name": "watched", "labels": [label]})
    engine = Engine(cfg.model)
    smoother, tracker = Smoother.from_config(cfg.smoothing), RuleTracker([rule], engine.labels)
    clips = {name: decode(VIDEOS / name) for name in truth}
    layout = plan(args.watch, [n for n in truth if n != args.watch], args.watch_seconds, args.other_seconds)
    segments, t = [], 0.0
    for name, seconds in layout:
        if name == args.watch:
            segments.append((t, t + seconds))
        t += seconds
    events = run(engine, smoother, tracker, looped([(clips[n], s) for n, s in layout]))
    rows, false = score(segments, events, grace=args.other_seconds / 2)

    sm = cfg.smoothing
    print(f"events: {engine.describe()}; smoothing {sm.method}"
          + (f" alpha {sm.alpha:g}" if sm.method == "ema" else f" window {sm.window}" if sm.method == "window" else "")
          + f"; rule {label!r} enter {rule.enter:g} exit {rule.exit:g} min_duration {rule.min_duration:g} s")
    print("stream: " + ", ".join(f"{n} {s:g} s" for n, s in layout) + f" ({t:g} s at {FPS:g} fps)")
    print()
    print("| watched segment | event start latency | event end lag |")
    print("|---|---|---|")
    for r in rows:
        s, e = r["segment"]
        if r["start_latency"] is None:
            print(f"| {s:.0f}-{e:.0f} s | missed | - |")
        else:
            print(f"| {s:.0f}-{e:.0f} s | {r['start_latency']:.1f} s | {r['end_lag']:+.1f} s |")
    missed = sum(r["start_latency"] is None for r in rows)
    worst = max((r["start_latency"] for r in rows if r["start_latency"] is not None), default=None)
    print()
    print(f"missed {missed}, false {len(false)}" + "".join(f" ({a:.1f}-{b:.1f} s)" for a, b in false)
          + (f", worst start latency {worst:.1f} s" if worst is not None else ""))
    ok = missed == 0 and not false and worst is not None and worst <= START_LIMIT
    print(f"target (every event found, start <= {START_LIMIT:g} s, no false event): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
