"""ClipSink: an MP4 of the seconds around each event start.

On the start of an event (of a rule in ``cfg.rules``, or of any rule when the
list is empty) the sink writes the ``pre_seconds`` of frames already in the
frame ring before the start, then the frames that arrive afterwards until
``post_seconds`` after the start: the clip is the source time window
``[start - pre_seconds, start + post_seconds)``. Predictions arrive at the model
rate (~5 fps) only, so on each one the sink reads from the ring every frame
newer than the last one it wrote (``ring.since``, which leaves the inference
thread's read cursor alone). Each frame is stamped with its own source time; the
nominal rate (``ctx.source_fps()``, else the spacing measured in the ring) only
sets the mp4v fallback's constant rate and the window's half-frame margins.

- A start while a clip is being written extends that clip to the new start +
  ``post_seconds`` (one file, named after every rule in it, ``..._cook+wash.mp4``)
  up to ``max_seconds``; a start after that begins a new clip. One encoder at a
  time keeps a Pi Zero's CPU for the model.
- Names are the local wall time of the first start and the rule names in safe
  characters: ``2026-11-22T14-03-05_cook.mp4`` (``-2``, ``-3`` ... if taken).
  The clip is written as ``.<name>.part.mp4`` and renamed when finished and
  checked readable; a crash leaves only such a temp file, deleted at the next
  start.
- Codec: H.264 (yuv420p, faststart) through PyAV, so clips play on phones and in
  browsers: the Pi 4's hardware encoder, else libx264, else OpenCV's ``mp4v``
  with one warning (edge/sinks/encoders.py). Each frame keeps its own timestamp,
  so a variable-rate source gives a clip of the right duration.
- Encoding runs on this sink's own thread (behind the runner's bounded queue),
  never on the inference thread; it reads frames from the bounded ring, so a clip
  that cannot keep up loses the frames the ring has dropped by then and counts
  them (``frames_dropped`` in the log line and the metadata), memory stays flat.
- Beside each clip: ``<stem>.jpg``, the poster (the frame with the highest score
  of the clip's rules, JPEG), and ``<stem>.json``, its metadata (rules, start
  times, frames, frames dropped, encoder, poster file name), written last.
- Disk: beyond ``max_files`` clips or ``max_mb`` in total (posters and metadata
  included) the oldest clips (only files whose names this sink makes, with their
  poster and metadata) are deleted. No clip starts, and one in
  progress is abandoned, with less than ``min_free_mb`` free. A write that fails
  (disk full) deletes the partial file, is counted and logged (rate-limited);
  the daemon keeps running.
- ``close()`` (stop, reload) finishes a clip in progress with the frames it has
  (plus any in the ring inside its window), so it is shorter but playable.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import commit, write_bytes_atomic
from edge.errors import EdgeError
from edge.prediction import iso_wall
from edge.ratelog import RateLimitedLog
from edge.sinks import encoders
from edge.sinks.base import Prediction, Sink, SinkContext

logger = logging.getLogger(__name__)

MB = 1_000_000
FALLBACK_FPS = 15.0
ERROR_LOG_INTERVAL = 60.0
STAMP = r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d"
NAME_RE = re.compile(rf"^{STAMP}_[A-Za-z0-9._+-]+\.mp4$")  # the clips this sink makes
TEMP_RE = re.compile(rf"^\.{STAMP}_[A-Za-z0-9._+-]+\.part\.mp4$")  # clips in progress (or left by a crash)
COMPANIONS = (".jpg", ".json")  # the poster and the metadata beside each clip, deleted with it
POSTER_QUALITY = 85


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


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


@dataclass
class _Clip:
    stamp: str  # local wall time of the first start
    rules: list[str]
    start: float  # source t of the first event start
    begin: float  # window start (start - pre_seconds)
    end: float  # window end (exclusive): the last start + post_seconds, capped by max_seconds
    temp: Path
    fps: float
    wall: float = 0.0  # wall clock of the first start
    writer: encoders.PyAVWriter | encoders.OpenCVWriter | None = None
    size: tuple[int, int] | None = None  # (w, h)
    encoder: str = ""
    last_seq: int = -1
    frames: int = 0
    dropped: int = 0  # frames of the window that left the ring before they were written
    first_t: float | None = None
    last_t: float | None = None
    starts: list[float] = field(default_factory=list)
    peak: tuple[float, float, Any] | None = None  # (score, source t, Frame) of the poster

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
        self._errors = RateLimitedLog(logger, ERROR_LOG_INTERVAL)  # one line a minute per kind of problem
        self.saved = 0
        self.failed = 0  # clips lost to a write error (disk full, unreadable result)
        self.skipped = 0  # events without a clip (low disk space, no frames)
        self.deleted = 0  # old clips removed by max_files / max_mb
        self.frames_missed = 0  # frames that left the ring before the sink could write them
        self.last_clip = ""
        self.last_error = ""
        self.encoder = ""  # h264_v4l2m2m | libx264 | mp4v: what the clips are written with

    def describe(self) -> str:
        return f"clip:{self.dir}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
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
        h, w = self.ctx.frame_size() or encoders.PROBE_SIZE[::-1]
        self.encoder = encoders.choose(self.cfg.codec, w, h).encoder  # probed now: the warning comes at start
        logger.info("saving clips of %s to %s (%.1f s before, %.1f s after the start, %s)",
                    ", ".join(self.cfg.rules) or "every rule", self.dir, self.cfg.pre_seconds, self.cfg.post_seconds,
                    self.encoder)

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
                self._note_peak(p)
                self._catch_up()

    def _note_peak(self, p: Prediction) -> None:
        """Keep the frame with the highest score of the clip's rules inside its window: the poster."""
        clip = self._clip
        score = max((p.scores[r] for r in clip.rules if r in p.scores), default=None)
        if (score is not None and p.frame is not None and clip.begin <= p.t < clip.end
                and (clip.peak is None or score > clip.peak[0])):
            clip.peak = (score, p.t, p.frame)

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
                     temp=self.dir / f".{clip_stem(stamp, [ev.rule])}.part.mp4", fps=fps, starts=[ev.t],
                     wall=p.wall - max(0.0, p.t - ev.t),
                     peak=(ev.score, p.t, p.frame) if p.frame is not None else None)
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
                clip.dropped += frame.seq - clip.last_seq - 1
                self.frames_missed += frame.seq - clip.last_seq - 1
            if not self._write(frame):
                return

    # ------------------------------------------------------------------ writing

    def _write(self, frame) -> bool:
        """Append one frame (RGB) to the clip; False (and the clip abandoned) when the write fails."""
        clip = self._clip
        try:
            if clip.writer is None:
                h, w = frame.pixels.shape[:2]
                clip.size = (w, h)
                choice = encoders.choose(self.cfg.codec, w, h)
                clip.writer = encoders.open_writer(choice, clip.temp, w, h, clip.fps, self.cfg.crf, self.cfg.preset)
                clip.encoder = self.encoder = choice.encoder
            clip.writer.write(frame.pixels, frame.t)
        except OSError as err:
            self._abandon(str(err))
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
        try:
            clip.writer.close()
            if encoders.readable(clip.temp) == 0:
                raise OSError(f"{clip.temp.name} is not a readable video (disk full?)")
            final = self._final_path(clip.stem)
            commit(clip.temp, final)  # file and folder fsynced: a power cut leaves the clip whole, or none
        except OSError as err:
            self.failed += 1
            clip.temp.unlink(missing_ok=True)
            self._problem("write", f"clip of {'+'.join(clip.rules)} at {clip.start:.1f} s lost: {err}")
            return
        self.saved += 1
        self.last_clip = final.name
        poster = self._write_poster(clip, final.with_suffix(".jpg"))
        seconds = clip.last_t - clip.first_t + 1 / clip.fps
        self._write_metadata(clip, final, poster, seconds)
        logger.info("clip saved: %s (%d frames, %.1f s, %.1f MB, %s, %d frames dropped)", final.name, clip.frames,
                    seconds, final.stat().st_size / MB, clip.encoder, clip.dropped)
        self._retention(keep=final)

    def _write_poster(self, clip: _Clip, path: Path) -> Path | None:
        """The JPEG of the clip's peak frame beside it; None (the clip kept, the problem logged) when it fails."""
        import cv2

        if clip.peak is None:
            return None
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(clip.peak[2].pixels, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, POSTER_QUALITY])
        try:
            if not ok:
                raise OSError("JPEG encoding failed")
            write_bytes_atomic(path, jpeg.tobytes())
        except OSError as err:
            self._problem("poster", f"no poster for {path.stem}.mp4: {err}")
            return None
        return path

    def _write_metadata(self, clip: _Clip, final: Path, poster: Path | None, seconds: float) -> None:
        """``<stem>.json`` beside the clip, written last: once it exists, the clip and its poster are complete."""
        meta = {
            "clip": final.name, "poster": poster.name if poster else None, "rules": clip.rules,
            "start_wall": iso_wall(clip.wall),
            "starts_t": [round(t, 3) for t in clip.starts], "begin_t": round(clip.begin, 3), "end_t": round(clip.end, 3),
            "first_frame_t": round(clip.first_t, 3), "last_frame_t": round(clip.last_t, 3), "seconds": round(seconds, 3),
            "frames": clip.frames, "frames_dropped": clip.dropped, "fps": round(clip.fps, 3),
            "width": clip.size[0], "height": clip.size[1], "encoder": clip.encoder,
            "codec": encoders.Choice(clip.encoder).codec, "bytes": final.stat().st_size,
            "peak": {"score": round(float(clip.peak[0]), 4), "t": round(clip.peak[1], 3)} if clip.peak else None,
        }
        try:
            write_bytes_atomic(final.with_suffix(".json"), (json.dumps(meta, indent=1) + "\n").encode())
        except OSError as err:
            self._problem("metadata", f"no metadata for {final.name}: {err}")

    def _abandon(self, why: str) -> None:
        clip, self._clip = self._clip, None
        if clip is None:
            return
        if clip.writer is not None:
            clip.writer.abort()
        clip.temp.unlink(missing_ok=True)
        self.failed += 1
        self._problem("write", f"clip of {'+'.join(clip.rules)} at {clip.start:.1f} s abandoned: {why}")

    def _final_path(self, stem: str) -> Path:
        path = self.dir / f"{stem}.mp4"
        n = 2
        while any(path.with_suffix(s).exists() for s in (".mp4", *COMPANIONS)):
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
        sizes = {p: sum(_size(p.with_suffix(s)) for s in (".mp4", *COMPANIONS)) for p in files}
        total = sum(sizes.values())
        limit = self.cfg.max_mb * MB
        while files and (len(files) > self.cfg.max_files or total > limit):
            oldest = files[0]
            if oldest == keep:  # never the clip just written, even if it alone is over max_mb
                break
            files.pop(0)
            try:
                oldest.unlink()
                for suffix in COMPANIONS:
                    oldest.with_suffix(suffix).unlink(missing_ok=True)
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
        self._errors.log(key, "clip: %s", message)

    def status(self) -> dict[str, Any]:
        with self._lock:
            clip = self._clip
            out = {"dir": str(self.dir), "saved": self.saved, "failed": self.failed, "skipped": self.skipped,
                   "deleted": self.deleted, "frames_missed": self.frames_missed, "last_clip": self.last_clip,
                   "encoder": self.encoder,
                   "recording": clip.stem if clip else None}
            if self.last_error:
                out["clip_error"] = self.last_error
            return out

