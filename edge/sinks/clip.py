"""ClipSink: an MP4 of the seconds around each event start.

On the start of an event (of a rule in ``cfg.rules``, or of any rule when the
list is empty) the sink writes the ``pre_seconds`` of frames already in the
frame ring before the start, then the frames that arrive afterwards until
``post_seconds`` after the start: the clip is the source time window
``[start - pre_seconds, start + post_seconds)``. Predictions arrive at the model
rate (~5 fps) only, so on each one the sink reads from the ring every frame
newer than the last one it wrote (``ring.since``, which leaves the inference
thread's read cursor alone). Frames are written at the
source's frame rate (``ctx.source_fps()``, else the spacing measured in the
ring).

- A start while a clip is being written extends that clip to the new start +
  ``post_seconds`` (one file, named after every rule in it, ``..._cook+wash.mp4``)
  up to ``max_seconds``; a start after that begins a new clip. One encoder at a
  time keeps a Pi Zero's CPU for the model.
- Names are the local wall time of the first start and the rule names in safe
  characters: ``2026-11-22T14-03-05_cook.mp4`` (``-2``, ``-3`` ... if taken).
  The clip is written as ``.<name>.part.mp4`` and renamed when finished and
  checked readable; a crash leaves only such a temp file, deleted at the next
  start.
- Codec: ``avc1`` (H.264) when this OpenCV can write it (probed once per frame
  size with a tiny clip that is read back), else ``mp4v``.
- Disk: beyond ``max_files`` clips or ``max_mb`` in total the oldest clips (only
  files whose names this sink makes) are deleted. No clip starts, and one in
  progress is abandoned, with less than ``min_free_mb`` free. A write that fails
  (disk full) deletes the partial file, is counted and logged (rate-limited);
  the daemon keeps running.
- ``close()`` (stop, reload) finishes a clip in progress with the frames it has
  (plus any in the ring inside its window), so it is shorter but playable.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.sinks.base import Prediction, Sink, SinkContext

logger = logging.getLogger(__name__)

MB = 1_000_000
FALLBACK_FPS = 15.0
ERROR_LOG_INTERVAL = 60.0
STAMP = r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d"
NAME_RE = re.compile(rf"^{STAMP}_[A-Za-z0-9._+-]+\.mp4$")  # the clips this sink makes
TEMP_RE = re.compile(rf"^\.{STAMP}_[A-Za-z0-9._+-]+\.part\.mp4$")  # clips in progress (or left by a crash)
PROBE_FRAMES = 3

_codec_lock = threading.Lock()
_codecs: dict[tuple[str, int, int], str] = {}  # (configured codec, width, height) -> fourcc that works


def safe_label(rule: str) -> str:
    """A rule name in file-name-safe characters (letters, digits, ``.``, ``_``, ``-``)."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", rule).strip("-.")
    return label[:40] or "event"


def clip_stem(stamp: str, rules: list[str]) -> str:
    """``2026-11-22T14-03-05_cook`` (``..._cook+wash`` when a second rule started during the clip)."""
    return f"{stamp}_{'+'.join(safe_label(r) for r in rules)[:100]}"


def wall_stamp(wall: float) -> str:
    """Local wall time in file-name-safe form: ``2026-11-22T14-03-05``."""
    return datetime.fromtimestamp(wall).strftime("%Y-%m-%dT%H-%M-%S")


def _readable(path: Path) -> int:
    """Frames OpenCV reads back from the start of ``path`` (at most PROBE_FRAMES); 0 when unreadable."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0
        n = 0
        while n < PROBE_FRAMES and cap.read()[0]:
            n += 1
        return n
    finally:
        cap.release()


def pick_codec(wanted: str, folder: Path, width: int, height: int, fps: float) -> str:
    """The fourcc to use: ``avc1`` when it really writes a readable file here, else ``mp4v``. Probed once per size."""
    import cv2

    key = (wanted, width, height)
    with _codec_lock:
        if key in _codecs:
            return _codecs[key]
        choice = "mp4v"
        if wanted in ("auto", "avc1"):
            probe = folder / f".probe-{os.getpid()}-{threading.get_ident()}.mp4"
            try:
                writer = cv2.VideoWriter(str(probe), cv2.VideoWriter_fourcc(*"avc1"), fps, (width, height))
                if writer.isOpened():
                    blank = np.zeros((height, width, 3), np.uint8)
                    for _ in range(PROBE_FRAMES):
                        writer.write(blank)
                    writer.release()
                    if _readable(probe) > 0:
                        choice = "avc1"
                else:
                    writer.release()
            except cv2.error as err:
                logger.debug("avc1 probe: %s", err)
            finally:
                probe.unlink(missing_ok=True)
            if choice != "avc1":
                level = logging.WARNING if wanted == "avc1" else logging.INFO
                logger.log(level, "clip: this OpenCV cannot write H.264 (avc1) at %dx%d: using mp4v", width, height)
        _codecs[key] = choice
        return choice


@dataclass
class _Clip:
    stamp: str  # local wall time of the first start
    rules: list[str]
    start: float  # source t of the first event start
    begin: float  # window start (start - pre_seconds)
    end: float  # window end (exclusive): the last start + post_seconds, capped by max_seconds
    temp: Path
    fps: float
    writer: Any = None
    size: tuple[int, int] | None = None  # (w, h)
    codec: str = ""
    last_seq: int = -1
    frames: int = 0
    first_t: float | None = None
    last_t: float | None = None
    starts: list[float] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return clip_stem(self.stamp, self.rules)


class ClipSink(Sink):
    type = "clip"

    def __init__(self, cfg, ctx: SinkContext) -> None:
        super().__init__(cfg, ctx)
        self.dir = ctx.state_path(cfg.dir)
        self._lock = threading.RLock()
        self._clip: _Clip | None = None
        self._closed = False
        self._last_logged: dict[str, float] = {}
        self.saved = 0
        self.failed = 0  # clips lost to a write error (disk full, unreadable result)
        self.skipped = 0  # events without a clip (low disk space, no frames)
        self.deleted = 0  # old clips removed by max_files / max_mb
        self.frames_missed = 0  # frames that left the ring before the sink could write them
        self.last_clip = ""
        self.last_error = ""
        self.codec = ""  # the fourcc of the last clip

    def describe(self) -> str:
        return f"clip:{self.dir}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        import cv2  # noqa: F401  (fail here, not at the first event)

        if self.ctx.ring is None:
            raise EdgeError("clip sink needs the daemon's frame ring (it has none here)")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EdgeError(f"clip sink: cannot create {self.dir} ({err.strerror}): give the service user a "
                            f"writable folder (StateDirectory= in the unit) or set dir") from None
        for stale in self.dir.iterdir():
            if TEMP_RE.match(stale.name):
                logger.warning("clip: deleting %s, an unfinished clip from an earlier run", stale.name)
                stale.unlink(missing_ok=True)
        self._retention(keep=None)
        logger.info("saving clips of %s to %s (%.1f s before, %.1f s after the start)",
                    ", ".join(self.cfg.rules) or "every rule", self.dir, self.cfg.pre_seconds, self.cfg.post_seconds)

    def close(self) -> None:
        """Finish a clip in progress with what it has (and what the ring still holds of its window). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._clip is not None:
                self._catch_up(final=True)
                if self._clip is not None:
                    self._finish()

    # ------------------------------------------------------------------ predictions

    def _wants(self, rule: str) -> bool:
        return not self.cfg.rules or rule in self.cfg.rules

    def event(self, ev, p: Prediction | None) -> None:
        with self._lock:
            if self._closed or p is None or ev.phase != "start" or not self._wants(ev.rule):
                return
            clip = self._clip
            if clip is not None and ev.t < clip.end:
                self._extend(clip, ev)
                return
            if clip is not None:
                self._catch_up()  # finishes it: the window ended before this start
                if self._clip is not None:
                    self._finish()
            self._begin(ev, p)

    def emit(self, p: Prediction) -> None:
        with self._lock:
            if not self._closed and self._clip is not None:
                self._catch_up()

    def _extend(self, clip: _Clip, ev) -> None:
        end = min(ev.t + self.cfg.post_seconds, clip.begin + self.cfg.max_seconds)
        if end > clip.end:
            clip.end = end
        if ev.rule not in clip.rules:
            clip.rules.append(ev.rule)
        clip.starts.append(ev.t)
        logger.info("clip %s: %s started at %.1f s, clip extended to %.1f s", clip.stem, ev.rule, ev.t, clip.end)

    def _begin(self, ev, p: Prediction) -> None:
        cfg = self.cfg
        free = self._free_mb()
        if free is not None and free < cfg.min_free_mb:
            self.skipped += 1
            self._problem("space", f"no clip for {ev.rule} at {ev.t:.1f} s: {free:.0f} MB free on {self.dir}, "
                                   f"below min_free_mb {cfg.min_free_mb:.0f}")
            return
        fps = self._fps()
        begin = ev.t - cfg.pre_seconds
        stamp = wall_stamp(p.wall - max(0.0, p.t - ev.t))
        clip = _Clip(stamp=stamp, rules=[ev.rule], start=ev.t, begin=begin,
                     end=min(ev.t + cfg.post_seconds, begin + cfg.max_seconds),
                     temp=self.dir / f".{clip_stem(stamp, [ev.rule])}.part.mp4", fps=fps, starts=[ev.t])
        self._clip = clip
        logger.info("clip %s: %s started at %.1f s, recording %.1f s to %.1f s at %.2f fps",
                    clip.stem, ev.rule, ev.t, begin, clip.end, fps)
        eps = 0.25 / fps
        for frame in self.ctx.ring.last_seconds(cfg.pre_seconds + eps, until=ev.t):
            if begin - eps <= frame.t < clip.end - eps and not self._write(frame):
                return

    def _catch_up(self, final: bool = False) -> None:
        """Write the ring's frames newer than the last one written; finish once the window has passed."""
        clip = self._clip
        if clip is None:
            return
        if not final:
            free = self._free_mb()
            if free is not None and free < self.cfg.min_free_mb:
                self._abandon(f"{free:.0f} MB free on {self.dir}, below min_free_mb {self.cfg.min_free_mb:.0f}")
                return
        eps = 0.25 / clip.fps
        for frame in self.ctx.ring.since(clip.last_seq):
            if frame.t >= clip.end - eps or (clip.last_t is not None and frame.t < clip.last_t):
                self._finish()  # the window has passed (or the source restarted its clock: a reopened camera)
                return
            if frame.t < clip.begin - eps:  # older than the window (no pre-roll available)
                clip.last_seq = frame.seq
                continue
            if clip.last_seq >= 0 and frame.seq > clip.last_seq + 1 and clip.frames:
                self.frames_missed += frame.seq - clip.last_seq - 1
            if not self._write(frame):
                return

    # ------------------------------------------------------------------ writing

    def _write(self, frame) -> bool:
        """Append one frame (RGB) to the clip; False (and the clip abandoned) when the write fails."""
        import cv2

        clip = self._clip
        pixels = frame.pixels
        if clip.writer is None:
            h, w = pixels.shape[:2]
            clip.size = (w, h)
            clip.codec = self.codec = pick_codec(self.cfg.codec, self.dir, w, h, clip.fps)
            writer = cv2.VideoWriter(str(clip.temp), cv2.VideoWriter_fourcc(*clip.codec), clip.fps, clip.size)
            if not writer.isOpened():
                writer.release()
                self._abandon(f"OpenCV could not open an {clip.codec} writer for {clip.temp}")
                return False
            clip.writer = writer
        if (pixels.shape[1], pixels.shape[0]) != clip.size:  # the source changed size mid-clip
            pixels = cv2.resize(pixels, clip.size, interpolation=cv2.INTER_AREA)
        try:
            ok = clip.writer.write(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        except cv2.error as err:
            self._abandon(f"writing a frame failed: {err}")
            return False
        if ok is False:  # OpenCV 5 reports a failed write (disk full); 4.x returns None
            self._abandon("writing a frame failed (disk full?)")
            return False
        clip.last_seq = frame.seq
        clip.frames += 1
        if clip.first_t is None:
            clip.first_t = frame.t
        clip.last_t = frame.t
        return True

    def _finish(self) -> None:
        clip, self._clip = self._clip, None
        if clip.writer is None:
            self.skipped += 1
            self._problem("frames", f"no frames for the clip of {'+'.join(clip.rules)} at {clip.start:.1f} s "
                                    f"(the ring had none in its window)")
            return
        clip.writer.release()
        try:
            if _readable(clip.temp) == 0:
                raise OSError(f"{clip.temp.name} is not a readable video (disk full?)")
            with open(clip.temp, "rb") as f:
                os.fsync(f.fileno())
            final = self._final_path(clip.stem)
            os.rename(clip.temp, final)
        except OSError as err:
            self.failed += 1
            clip.temp.unlink(missing_ok=True)
            self._problem("write", f"clip of {'+'.join(clip.rules)} at {clip.start:.1f} s lost: {err}")
            return
        self.saved += 1
        self.last_clip = final.name
        seconds = clip.frames / clip.fps
        logger.info("clip saved: %s (%d frames, %.1f s, %.1f MB)", final.name, clip.frames, seconds,
                    final.stat().st_size / MB)
        self._retention(keep=final)

    def _abandon(self, why: str) -> None:
        clip, self._clip = self._clip, None
        if clip is None:
            return
        if clip.writer is not None:
            try:
                clip.writer.release()
            except Exception:  # a writer on a full disk may fail to close too; the file goes anyway
                pass
        clip.temp.unlink(missing_ok=True)
        self.failed += 1
        self._problem("write", f"clip of {'+'.join(clip.rules)} at {clip.start:.1f} s abandoned: {why}")

    def _final_path(self, stem: str) -> Path:
        path = self.dir / f"{stem}.mp4"
        n = 2
        while path.exists():
            path = self.dir / f"{stem}-{n}.mp4"
            n += 1
        return path

    # ------------------------------------------------------------------ disk

    def clips(self) -> list[Path]:
        """The clips this sink made in its folder, oldest first."""
        try:
            entries = [p for p in self.dir.iterdir() if NAME_RE.match(p.name) and p.is_file()]
        except OSError:
            return []
        return sorted(entries, key=lambda p: (p.stat().st_mtime, p.name))

    def _retention(self, keep: Path | None) -> None:
        files = self.clips()
        sizes = {p: p.stat().st_size for p in files}
        total = sum(sizes.values())
        limit = self.cfg.max_mb * MB
        while files and (len(files) > self.cfg.max_files or total > limit):
            oldest = files[0]
            if oldest == keep:  # never the clip just written, even if it alone is over max_mb
                break
            files.pop(0)
            try:
                oldest.unlink()
            except OSError as err:
                self._problem("retention", f"cannot delete old clip {oldest.name}: {err.strerror}")
                break
            total -= sizes[oldest]
            self.deleted += 1
            logger.info("clip: deleted %s (max_files %d, max_mb %.0f)", oldest.name, self.cfg.max_files,
                        self.cfg.max_mb)

    def _free_mb(self) -> float | None:
        try:
            return shutil.disk_usage(self.dir).free / MB
        except OSError:
            return None

    def _fps(self) -> float:
        fps = self.ctx.source_fps() or 0.0
        if 0 < fps <= 240:
            return float(fps)
        ts = [f.t for f in self.ctx.ring.last_seconds(math.inf)]
        steps = np.diff(ts) if len(ts) > 2 else np.array([])
        steps = steps[steps > 0]
        if steps.size:
            measured = 1.0 / float(np.median(steps))
            if 0 < measured <= 240:
                return measured
        return FALLBACK_FPS

    def _problem(self, key: str, message: str) -> None:
        self.last_error = message
        now = time.monotonic()
        if now - self._last_logged.get(key, -math.inf) >= ERROR_LOG_INTERVAL:
            self._last_logged[key] = now
            logger.error("clip: %s", message)

    def status(self) -> dict[str, Any]:
        with self._lock:
            clip = self._clip
            out = {"dir": str(self.dir), "saved": self.saved, "failed": self.failed, "skipped": self.skipped,
                   "deleted": self.deleted, "frames_missed": self.frames_missed, "last_clip": self.last_clip,
                   "codec": self.codec,
                   "recording": clip.stem if clip else None}
            if self.last_error:
                out["clip_error"] = self.last_error
            return out

