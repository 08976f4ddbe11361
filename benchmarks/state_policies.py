"""How fast does each state policy follow a change of action, and what does it cost?

Builds a video of the two shared clips back to back (carving ice ~30 s, then
flipping pancake ~30 s) and a 60 s loop of the pancake clip, decodes them at
5 fps once, and for each policy reports:

- follow: seconds after the switch until the top-1 is "flipping pancake"
  (first time), and until it stays so to the end of the video ("held");
- the top-1 (and score) on each clip alone, as `edge classify` would give it;
- on the 60 s pancake loop, the share of frames after the first 10 s whose
  top-1 is right (does the policy stay stable over a long run?).

Also measures ``every-frame``: the capped policy as first specified (rescale to
N after every frame), kept here only to show why it was not shipped.

Run: .venv/bin/python benchmarks/state_policies.py [--model-dir DIR] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.clips import switch_video  # noqa: E402
from edge.capture.opencv import read_frames  # noqa: E402
from edge.model import StreamModel, softmax  # noqa: E402
from edge.states import CappedPolicy, CumulativePolicy, WindowedPolicy  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "videos"
FPS = 5.0


class EveryFramePolicy(CappedPolicy):
    """Rescale the head pool to N frames after every frame (the rejected variant)."""

    def step(self, frame: np.ndarray) -> np.ndarray:
        logits = self.model.step(frame)
        self.model.cap_head(self.cap_frames)
        return logits

    def describe(self) -> str:
        return f"every-frame N={self.cap_frames}"


def policies(model: StreamModel):
    yield "cumulative", CumulativePolicy(model)
    for n in (10, 25, 50):
        yield f"every-frame N={n}", EveryFramePolicy(model, n)
    for n in (10, 15, 25, 50):
        yield f"capped N={n}", CappedPolicy(model, n)
    for w in (4, 8, 16):
        yield f"windowed W={w} s", WindowedPolicy(model, int(w * FPS))


def run(policy, frames: list[np.ndarray]) -> list[np.ndarray]:
    policy.reset()
    return [softmax(policy.step(f)) for f in frames]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=os.environ.get("EDGE_MODEL_DIR", str(ROOT / "models")))
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds of each action in the switch video")
    args = ap.parse_args()
    model_path = Path(args.model_dir) / "movinet_a0_stream_int8.tflite"
    labels_path = Path(args.model_dir) / "kinetics600_label_map.txt"
    if not model_path.exists():
        print(f"needs the A0 model in {args.model_dir} (./install.sh, or --model-dir)", file=sys.stderr)
        return 2
    model = StreamModel(model_path, labels_path)
    ice, pancake = model.labels.index("carving ice"), model.labels.index("flipping pancake")
    clips = [VIDEOS / "carving_ice.mp4", VIDEOS / "flipping_a_pancake.mkv"]
    with tempfile.TemporaryDirectory() as tmp:
        switch_path = Path(tmp) / "switch.mp4"
        starts = switch_video(clips, switch_path, seconds_each=args.seconds)
        loop_path = Path(tmp) / "pancake60.mp4"
        switch_video(clips[1:], loop_path, seconds_each=60)
        switch = list(read_frames(str(switch_path), FPS))
        loop = [f.pixels for f in read_frames(str(loop_path), FPS)]
        alone = {c.name: [f.pixels for f in read_frames(str(c), FPS)] for c in clips}
    t_switch = starts[1]
    times = [f.t for f in switch]
    first_after = next(i for i, t in enumerate(times) if t >= t_switch)
    print(f"switch video: {times[-1]:.0f} s, switch at {t_switch:.1f} s; pancake loop: {len(loop) / FPS:.0f} s; "
          f"{model.backend}")
    print()
    print("| policy | follow (first) | follow (held) | ice before switch | carving_ice.mp4 alone | "
          "flipping_a_pancake.mkv alone | 60 s pancake: top-1 right after 10 s | cost |")
    print("|---|---|---|---|---|---|---|---|")
    for name, policy in policies(model):
        probs = run(policy, [f.pixels for f in switch])
        top = [int(p.argmax()) for p in probs]
        first = next((times[i] - t_switch for i in range(first_after, len(top)) if top[i] == pancake), None)
        held = next((times[i] - t_switch for i in range(first_after, len(top)) if all(x == pancake for x in top[i:])), None)
        ice_share = np.mean([x == ice for x in top[int(2 * FPS):first_after]])
        cells = []
        for clip, frames in alone.items():
            p = run(policy, frames)[-1]
            cells.append(f"{model.labels[int(p.argmax())]} {p.max():.2f}")
        lp = run(policy, loop)
        stable = np.mean([int(p.argmax()) == pancake for p in lp[int(10 * FPS):]])
        fmt = lambda x: "never" if x is None else f"{x:.1f} s"  # noqa: E731
        print(f"| {name} | {fmt(first)} | {fmt(held)} | {ice_share * 100:.0f} % | {cells[0]} | {cells[1]} | "
              f"{stable * 100:.0f} % | {policy.cost:.0f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
