"""The daemon's status: what it counts (:class:`Stats`), the status.json it writes (:func:`snapshot`),
and reading it from a shell (``edge status``, ``edge tail``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.capture.supervisor import CaptureStats
from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.pipeline import Pipeline
    from edge.prediction import Prediction
    from edge.sinks.base import SinkRunner


def _stage_latencies() -> dict[str, deque]:
    from edge.pipeline import STAGES

    return {s: deque(maxlen=300) for s in STAGES}


@dataclass
class Stats(CaptureStats):
    """The capture thread's counts (CaptureStats) and the inference thread's."""

    started: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    inferences: int = 0
    sampled_out: int = 0  # frames the 5 fps sampler skipped (a faster source)
    overrun_drops: int = 0  # due frames skipped because inference ran late
    resets: int = 0
    last_infer_mono: float = 0.0
    infer_beat: float = field(default_factory=time.monotonic)
    infer_times: deque = field(default_factory=lambda: deque(maxlen=64))
    latency: dict[str, deque] = field(default_factory=_stage_latencies)

    @staticmethod
    def rate(times: deque, window: float = 5.0) -> float:
        if len(times) < 2:
            return 0.0
        now = time.monotonic()
        recent = [t for t in times if now - t <= window]
        if len(recent) < 2:
            return 0.0
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0

    def percentiles(self) -> dict[str, dict[str, float]]:
        import numpy as np

        out = {}
        for stage, values in self.latency.items():
            if values:
                arr = np.fromiter(values, dtype=np.float64)
                out[stage] = {"p50_ms": round(float(np.percentile(arr, 50)) * 1000, 2),
                              "p95_ms": round(float(np.percentile(arr, 95)) * 1000, 2)}
        return out


def top3(last: Prediction | None) -> list[dict]:
    return [s.as_dict() for s in last.smoothed_top[:3]] if last else []


def status_line(stats: Stats, last: Prediction | None) -> str:
    """systemd's STATUS= line (``systemctl status edge``)."""
    top = top3(last)
    best = f"{top[0]['label']} {top[0]['score']:.2f}" if top else "-"
    return f"{Stats.rate(stats.infer_times):.1f} fps, top: {best}, source {stats.source_state}"


def stats_line(stats: Stats, ring_dropped: int, runners: list[SinkRunner]) -> str:
    """The stats line logged once a minute."""
    s = stats
    lat = s.percentiles().get("total", {})
    return (f"in {Stats.rate(s.in_times):.1f} fps, model {Stats.rate(s.infer_times):.1f} fps, "
            f"{s.inferences} inferences, drops ring {ring_dropped} overrun {s.overrun_drops}, "
            f"latency p50 {lat.get('p50_ms', 0)} ms p95 {lat.get('p95_ms', 0)} ms, reopens {s.reopens}, "
            f"sinks {'ok' if all(r.health()['ok'] for r in runners) else 'degraded'}")


def snapshot(stats: Stats, *, source_name: str | None, pipeline: Pipeline | None, ring_dropped: int,
             last: Prediction | None, runners: list[SinkRunner], healthy: bool,
             ring: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of status.json (:func:`format_status` shows it)."""
    s = stats
    p = pipeline
    active = p.tracker.active() if p else {}
    return {
        "pid": os.getpid(),
        "updated": time.time(),
        "started": s.started,
        "uptime_s": round(time.monotonic() - s.started_mono, 1),
        "source": {"name": source_name, "state": s.source_state,
                   "fps": round(Stats.rate(s.in_times), 2), "frames": s.frames_in, "reopens": s.reopens,
                   "stalls": s.stalls},
        "ring": ring or {},  # frames, bytes, max_bytes (source.ring_mb), seconds
        "model": {"name": p.engine.describe() if p else None, "fps": round(Stats.rate(s.infer_times), 2),
                  "inferences": s.inferences, "resets": s.resets},
        "drops": {"ring": ring_dropped, "overrun": s.overrun_drops, "subsampled": s.sampled_out},
        "latency": s.percentiles(),
        "top": top3(last),
        "active_events": [{"rule": name, "since": round(ev.start, 2), "peak": round(ev.peak, 3)}
                          for name, ev in active.items()],
        # watch rules left out, and why (the learned classes they name: their head file is gone)
        "inactive_rules": [{"rule": name, "why": why} for name, why in (p.tracker.inactive if p else {}).items()],
        "sinks": [r.health() for r in runners],
        "healthy": healthy,
        "last_error": s.last_error,
    }


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def format_status(d: dict[str, Any], path: Path | None = None) -> str:
    age = time.time() - d.get("updated", 0)
    src, model, drops = d.get("source", {}), d.get("model", {}), d.get("drops", {})
    lines = []
    stale = f"  (STALE: last update {_ago(age)} ago; is the daemon running?)" if age > 10 else ""
    lines.append(f"edge pid {d.get('pid')}, up {_ago(d.get('uptime_s', 0))}, {'healthy' if d.get('healthy') else 'NOT HEALTHY'}{stale}")
    lines.append(f"source   {src.get('name')} [{src.get('state')}] {src.get('fps', 0):.1f} fps in, "
                 f"{src.get('frames', 0)} frames, {src.get('reopens', 0)} reopens"
                 + (f", {src['stalls']} stalls" if src.get("stalls") else ""))
    lines.append(f"model    {model.get('name')} {model.get('fps', 0):.1f} fps, {model.get('inferences', 0)} inferences, "
                 f"{model.get('resets', 0)} resets")
    lines.append(f"drops    ring {drops.get('ring', 0)}, overrun {drops.get('overrun', 0)} "
                 f"(subsampled to 5 fps: {drops.get('subsampled', 0)})")
    ring = d.get("ring") or {}
    if ring.get("max_bytes"):
        lines.append(f"ring     {ring.get('frames', 0)} frames, {ring.get('bytes', 0) / 2**20:.1f} of "
                     f"{ring['max_bytes'] / 2**20:.1f} MB ({ring.get('seconds', 0):.1f} s)")
    lat = d.get("latency", {})
    if lat:
        parts = [f"{k} {v['p50_ms']:.1f}/{v['p95_ms']:.1f}" for k, v in lat.items()]
        lines.append("latency  p50/p95 ms: " + ", ".join(parts))
    top = d.get("top", [])
    lines.append("top      " + ("; ".join(f"{t['label']} {t['score']:.2f}" for t in top) or "-"))
    events = d.get("active_events", [])
    lines.append("events   " + ("; ".join(f"{e['rule']} since {e['since']:.1f} s (peak {e['peak']:.2f})" for e in events)
                              or "none active"))
    for rule in d.get("inactive_rules", []):
        lines.append(f"rule     {rule.get('rule')} [INACTIVE] {rule.get('why', '')}")
    for s in d.get("sinks", []):
        extra = {k: v for k, v in s.items() if k not in ("sink", "ok", "last_error")}
        flat = ", ".join(f"{k} {v}" for k, v in extra.items())
        err = f"; last error: {s['last_error']}" if s.get("last_error") else ""
        lines.append(f"sink     {s['sink']} [{'ok' if s.get('ok') else 'FAILING'}] {flat}{err}")
    if d.get("last_error"):
        lines.append(f"error    {d['last_error']}")
    if path:
        lines.append(f"(from {path})")
    return "\n".join(lines)


def log_path_from_config(config_path: Path) -> Path:
    from edge import config
    from edge.config import LogSinkConfig
    from edge.sinks.base import SinkContext

    cfg = config.load(config_path) if config_path.exists() else config.Config()
    logs = [s for s in cfg.sinks if isinstance(s, LogSinkConfig)]
    if not logs:
        raise EdgeError(f"{config_path} has no log sink: pass --file PATH")
    path = SinkContext.logs_path(logs[0].path)
    if not path.is_absolute() and not path.exists() and Path("/var/log/edge", path.name).exists():
        return Path("/var/log/edge", path.name)
    return path


def _format_line(line: str) -> str:
    """A log line for people; a line that is not one of ours (not JSON, other fields) is shown as it is."""
    try:
        d = json.loads(line)
        if isinstance(d, dict):
            return _format_record(d)
    except (ValueError, TypeError, KeyError, AttributeError):  # not JSON, or fields of the wrong type
        pass
    return line.rstrip("\n")


def _format_record(d: dict) -> str:
    t = d.get("t")
    when = (d.get("wall") or "")[11:19]
    head = f"{when} {t:8.1f}s" if isinstance(t, (int, float)) else f"{when} {'':>9}"
    kind = d.get("kind")
    if kind == "event":
        extra = f" duration {d.get('duration', 0):.1f} s peak {d.get('peak', 0):.2f}" if d.get("phase") == "end" else ""
        return f"{head}  EVENT {d.get('label')} {d.get('phase')} score {d.get('score', 0):.2f}{extra}"
    if kind == "prediction":
        top = d.get("smoothed") or d.get("top") or []
        return f"{head}  " + "; ".join(f"{p['label']} {p['score']:.2f}" for p in top[:3])
    return f"{head}  {kind}: " + ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("t", "wall", "kind"))


def tail(path: Path, lines: int = 10, follow: bool = True, events_only: bool = False, raw: bool = False,
         out=None, stop=None) -> int:
    """Print the last ``lines`` lines, then follow the file across rotation until Ctrl-C."""
    out = out if out is not None else sys.stdout  # looked up per call, not bound once at import
    if not path.exists():
        raise EdgeError(f"log file {path} does not exist yet (is the daemon running with a log sink?)")
    if path.is_dir():
        raise EdgeError(f"{path} is a folder: pass the log file in it (--file {path / 'edge.jsonl'})")
    if not os.access(path, os.R_OK):
        raise EdgeError(f"log file {path} is not readable by this user (sudo, or add yourself to the edge group)")

    def show(line: str) -> None:
        if events_only and '"kind":"event"' not in line.replace(" ", ""):
            return
        print(line.rstrip("\n") if raw else _format_line(line), file=out, flush=True)

    with open(path, encoding="utf-8", errors="replace") as f:
        history = f.readlines()
        for line in history[-lines:] if lines > 0 else []:
            show(line)
        if not follow:
            return 0
        inode = os.fstat(f.fileno()).st_ino
        while stop is None or not stop():
            line = f.readline()
            if line:
                show(line)
                continue
            time.sleep(0.25)
            try:
                if os.stat(path).st_ino != inode:  # rotated: follow the new file
                    f.close()
                    f = open(path, encoding="utf-8", errors="replace")
                    inode = os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                pass
    return 0
