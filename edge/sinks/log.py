"""LogSink: predictions and events as JSON lines in a local file (no broker, no network).

One object a line: ``{"t", "wall", "kind": "prediction"|"event"|"status", ...}``.
Predictions carry the raw ``top`` and the ``smoothed`` top; they are written at
most every ``prediction_every`` seconds of source time. Event lines are always
written, flushed and fsynced.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from edge.sinks.base import Prediction, Sink, SinkContext

logger = logging.getLogger(__name__)


def prediction_line(p: Prediction, top: int) -> dict[str, Any]:
    return {
        "t": round(p.t, 3), "wall": p.wall_iso, "kind": "prediction", "seq": p.seq,
        "top": [s.as_dict() for s in p.top[:top]],
        "smoothed": [s.as_dict() for s in p.smoothed_top[:top]],
        "active": sorted(p.active),
    }


def event_line(p: Prediction, ev) -> dict[str, Any]:
    return {"t": round(ev.t, 3), "wall": p.wall_iso, "kind": "event", "label": ev.rule, **ev.as_dict()}


class LogSink(Sink):
    type = "log"

    def __init__(self, cfg, ctx: SinkContext) -> None:
        super().__init__(cfg, ctx)
        self.path = ctx.logs_path(cfg.path)
        self._file = None
        self._next_t: float | None = None
        self.lines = 0
        self.unwritten = 0

    def describe(self) -> str:
        return f"log:{self.path}"

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        logger.info("logging predictions to %s", self.path)
        self.write_status("started")

    def write_status(self, what: str, **extra: Any) -> None:
        now = time.time()
        from datetime import datetime, timezone

        wall = datetime.fromtimestamp(now, timezone.utc).astimezone().isoformat(timespec="milliseconds")
        self._write({"t": extra.pop("t", None), "wall": wall, "kind": "status", "status": what, **extra}, sync=True)

    def emit(self, p: Prediction) -> None:
        for ev in p.events:
            self._write(event_line(p, ev), sync=True)
        if self._next_t is None or p.t >= self._next_t or self.cfg.prediction_every == 0:
            self._write(prediction_line(p, self.cfg.top), sync=False)
            every = self.cfg.prediction_every
            self._next_t = p.t + every if self._next_t is None or p.t - self._next_t > every else self._next_t + every

    def _write(self, obj: dict[str, Any], sync: bool) -> None:
        if self._file is None:
            self.unwritten += 1
            return
        self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self.lines += 1
        if sync:
            self._file.flush()
            os.fsync(self._file.fileno())

    def status(self) -> dict[str, Any]:
        return {"path": str(self.path), "lines": self.lines, "unwritten": self.unwritten}

    def close(self) -> None:
        if self._file is not None:
            try:
                self.write_status("stopped")
                self._file.flush()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()
                self._file = None
