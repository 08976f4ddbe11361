"""CPU time of `edge classify` until its first prediction: what a one-shot command pays to start.

    .venv/bin/python benchmarks/first_prediction.py [VIDEO] [--repeat 3]

Each run is a fresh interpreter running the real CLI (`edge classify VIDEO`). An
import hook wraps ``Pipeline.step`` once edge.pipeline is loaded (the CLI loads it
itself, when it needs it), and the first step's return prints the process CPU time
(user + system, ``time.process_time``) and the edge modules and pydantic models
built so far. The rest of the file is not waited for. Prints one line per run and
the median with the spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "videos" / "carving_ice.mp4"

CHILD = r"""
import importlib.abc, importlib.util, json, os, sys, time

class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "edge.pipeline":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            step = module.Pipeline.step

            def first(self, *a, **k):
                out = step(self, *a, **k)
                cpu = time.process_time()
                import pydantic
                built = {v.__qualname__ for m in list(sys.modules.values()) if getattr(m, "__name__", "").startswith("edge")
                         for v in list(vars(m).values()) if isinstance(v, type) and issubclass(v, pydantic.BaseModel)
                         and v is not pydantic.BaseModel and v.__pydantic_complete__}
                print(json.dumps({"cpu_s": cpu, "label": out[0].top[0].label,
                                  "pydantic_models_ready": sorted(set(built))}), flush=True)
                os._exit(0)

            module.Pipeline.step = first

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Hook())
from edge.cli import main
sys.argv = ["edge", "classify", sys.argv[1]]
sys.exit(main())
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not Path(args.video).is_file():
        print(f"no video at {args.video}: pass one", file=sys.stderr)
        return 2
    times = []
    for i in range(args.repeat):
        r = subprocess.run([sys.executable, "-c", CHILD, args.video], capture_output=True, text=True, timeout=120,
                           cwd=REPO)
        line = next((x for x in r.stdout.splitlines() if x.startswith("{")), None)
        if line is None:
            print(f"run {i + 1}: no prediction (exit {r.returncode}): {r.stderr.strip()[-300:]}", file=sys.stderr)
            return 1
        d = json.loads(line)
        times.append(d["cpu_s"])
        print(f"run {i + 1}: {d['cpu_s']:.3f} s CPU to the first prediction ({d['label']}); "
              f"pydantic models built: {', '.join(d['pydantic_models_ready']) or 'none'}")
    print(f"median {statistics.median(times):.3f} s CPU (min {min(times):.3f}, max {max(times):.3f}, {len(times)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
