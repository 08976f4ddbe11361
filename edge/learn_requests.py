"""`edge learn record` through the running service: a request folder, no socket.

The service holds the camera; its frame ring has every frame. So the CLI does
not open the camera: it drops a request file into the service's request folder
(``<status file>.learn/`` beside status.json, made by the daemon, so it belongs
to the service user: ``sudo`` writes there, other users are refused), and the
daemon, which looks at the folder on every status tick (no signal, no socket),
records the clips from its ring on a worker thread of its own (never the
inference thread) into its state directory, with the same countdown and encoder
as a direct recording (:func:`edge.learn.record_clips`).

Files, all named ``<id>.<kind>``: ``request`` (JSON, written atomically by the
CLI; renamed ``taken`` by the daemon when it starts), ``log`` (the countdown and
progress lines, appended by the daemon and printed by the CLI as they come),
``done`` (JSON: the clips, written atomically last; or ``error``), ``cancel``
(the CLI was interrupted). The daemon clears the folder when it starts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable

from edge.atomic import write_bytes_atomic
from edge.errors import EdgeError

logger = logging.getLogger(__name__)

POLL = 0.5  # seconds between looks at the request folder (daemon) and at the answer (CLI)
PICKUP_SECONDS = 10.0  # the daemon must take a request within this
ENCODE_SECONDS = 30.0  # beyond the countdown and recording, per clip: encoding on a busy Pi
STALL_SECONDS = 5.0  # no new frame in the ring for this long: the camera stopped
LIMITS = {"seconds": 120.0, "count": 100, "countdown": 30}  # a request beyond these is refused


def folder_for(status_path: Path) -> Path:
    """The request folder of the daemon whose status file is ``status_path``."""
    return status_path.with_name(status_path.name + ".learn")


# --------------------------------------------------------------------------- daemon side


class RingSource:
    """The frames a running daemon captures, read from its ring from now on (a FrameSource for record_clips)."""

    def __init__(self, ring, stopped: Callable[[], bool], cancelled: Callable[[], bool]) -> None:
        self.ring = ring
        self.stopped = stopped
        self.cancelled = cancelled
        newest = ring.last_seconds(0.0)
        self.seq = newest[-1].seq if newest else -1
        self._waiting: list = []
        self._pause = threading.Event()  # never set: the worker's wait between looks at the ring

    def read(self):
        from edge.capture.base import SourceError
        from edge.learn import _Stopped

        deadline = time.monotonic() + STALL_SECONDS
        while not self._waiting:
            if self.cancelled():
                raise _Stopped("cancelled from the command line")
            if self.stopped():
                raise _Stopped("the edge service is stopping")
            if self.ring.closed:  # the source ended (a file without loop)
                return None
            self._waiting = self.ring.since(self.seq)
            if not self._waiting:
                if time.monotonic() > deadline:
                    raise SourceError(f"no frame for {STALL_SECONDS:g} s")
                self._pause.wait(0.02)  # the ring's own wait (newer) would move the inference thread's cursor
        frame = self._waiting.pop(0)
        self.seq = frame.seq
        return frame


class LearnRequests:
    """The daemon's half: look at the folder (:meth:`poll`, main thread), record on a worker thread."""

    def __init__(self, status_path: Path, ring: Callable[[], object], stop_event: threading.Event) -> None:
        self.folder = folder_for(Path(status_path))
        self.ring = ring
        self.stop_event = stop_event
        self.enabled = False
        self._worker: threading.Thread | None = None
        self._next = 0.0

    def open(self) -> None:
        """Make (or clear) the folder. One that cannot be made only turns recording through the service off."""
        try:
            self.folder.mkdir(mode=0o755, exist_ok=True)
            for old in self.folder.iterdir():  # answers and requests of an earlier run
                old.unlink(missing_ok=True)
        except OSError as err:
            logger.warning("cannot use %s (%s): `edge learn record` cannot record through this daemon",
                           self.folder, err.strerror or err)
            return
        self.enabled = True

    def poll(self, now: float) -> None:
        if not self.enabled or now < self._next:
            return
        self._next = now + POLL
        try:
            requests = sorted(p for p in self.folder.iterdir() if p.suffix == ".request")
        except OSError:
            return
        for path in requests:
            rid = path.stem
            try:
                req = _parse(json.loads(path.read_text(encoding="utf-8")))
                path.rename(path.with_suffix(".taken"))
            except (OSError, ValueError, TypeError, KeyError, EdgeError) as err:
                path.unlink(missing_ok=True)
                self._answer(rid, error=f"bad request: {err}")
                continue
            if self._worker is not None and self._worker.is_alive():
                path.with_suffix(".taken").unlink(missing_ok=True)
                self._answer(rid, error="it is recording for another `edge learn record` now: "
                                        "try again when that is done")
                continue
            self._worker = threading.Thread(target=self._record, args=(rid, req), name="learn-record", daemon=True)
            self._worker.start()

    def _record(self, rid: str, req: dict) -> None:
        from edge import learn
        from edge.sinks.clip import safe_label

        log = self.folder / f"{rid}.log"
        cancel = self.folder / f"{rid}.cancel"

        def say(line: str) -> None:
            with open(log, "a", encoding="utf-8") as f:
                f.write(line + "\n")

        try:
            ring = self.ring()
            if ring is None:
                raise OSError("the daemon has no frames yet")
            source = RingSource(ring, self.stop_event.is_set, cancel.exists)
            folder = learn.state_dir() / "learn" / safe_label(req["name"])
            logger.info("learn record: %d x %g s of %r for the command line", req["count"], req["seconds"], req["name"])
            clips = learn.record_clips(source, req["seconds"], req["count"], folder, req["stem"],
                                       countdown=req["countdown"], say=say)
            if cancel.exists():  # Ctrl-C: nobody waits for an answer; clips already saved stay in the state dir
                for path in (log, cancel):
                    path.unlink(missing_ok=True)
                return
            self._answer(rid, clips=[str(c) for c in clips])
        except Exception as err:  # the answer must come, whatever happened
            logger.warning("learn record failed: %s", err)
            self._answer(rid, error=str(err))
        finally:
            (self.folder / f"{rid}.taken").unlink(missing_ok=True)

    def _answer(self, rid: str, clips: list[str] | None = None, error: str | None = None) -> None:
        try:
            write_bytes_atomic(self.folder / f"{rid}.done", json.dumps({"clips": clips or [], "error": error}).encode())
        except OSError as err:
            logger.warning("cannot answer learn request %s: %s", rid, err)

    def close(self, timeout: float = 5.0) -> None:
        """After stop_event: the worker finishes the clip it has (the ring is closed) and answers."""
        if self._worker is not None:
            self._worker.join(timeout)


def _parse(data: dict) -> dict:
    from edge.learn import check_name

    req = {"name": str(data["name"]), "seconds": float(data["seconds"]), "count": int(data["count"]),
           "countdown": int(data["countdown"]), "stem": str(data["stem"])}
    check_name(req["name"])
    for key, top in LIMITS.items():
        if not 0 <= req[key] <= top or (key != "countdown" and req[key] <= 0):
            raise ValueError(f"{key} {req[key]} is out of range (at most {top})")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", req["stem"]):  # a file name in the state dir, never a path
        raise ValueError(f"stem {req['stem']!r} is not a plain file name")
    return req


# --------------------------------------------------------------------------- command-line side


def record_through(status: Path, pid: int, name: str, seconds: float, count: int, countdown: int, stem: str,
                   say=print, alive: Callable[[], bool] | None = None) -> list[Path]:
    """Ask the service (pid ``pid``, status file ``status``) to record; print its lines; the clips it saved."""
    folder = folder_for(status)
    if not folder.is_dir():
        raise EdgeError(f"the edge service (pid {pid}) takes no recording requests ({folder} is missing: "
                        "an older edge, restart it with `sudo systemctl restart edge`), or pass --source")
    if not os.access(folder, os.W_OK):
        raise EdgeError(f"not permitted to ask the edge service (pid {pid}) to record ({folder} belongs to its "
                        "user): run it with sudo")
    rid = f"{stem}-{os.getpid()}"
    request = folder / f"{rid}.request"
    body = {"name": name, "seconds": seconds, "count": count, "countdown": countdown, "stem": stem}
    try:
        write_bytes_atomic(request, json.dumps(body).encode())
    except OSError as err:
        raise EdgeError(f"cannot write the request into {folder}: {err.strerror or err}: run it with sudo") from None
    say(f"recording through the running service (pid {pid})")
    try:
        answer = _wait(folder, rid, count * (countdown + seconds + ENCODE_SECONDS), say, alive)
    except KeyboardInterrupt:
        if request.exists():
            request.unlink(missing_ok=True)
        else:
            (folder / f"{rid}.cancel").touch()
        raise
    for kind in ("log", "done"):  # a cancelled or timed-out request's files stay until the service restarts
        (folder / f"{rid}.{kind}").unlink(missing_ok=True)
    if answer.get("error"):
        raise EdgeError(f"the edge service could not record: {answer['error']}")
    return [Path(c) for c in answer.get("clips", [])]


def _wait(folder: Path, rid: str, budget: float, say, alive) -> dict:
    request, log, done = (folder / f"{rid}.{k}" for k in ("request", "log", "done"))
    start = time.monotonic()
    taken_at = None
    shown = 0
    wake = threading.Event()  # nothing sets it: a timed wait between looks at the files
    while True:
        if taken_at is None and not request.exists():
            taken_at = time.monotonic()
        shown = _show(log, shown, say)
        if done.exists():
            _show(log, shown, say)
            return json.loads(done.read_text(encoding="utf-8"))
        now = time.monotonic()
        if taken_at is None and now - start > PICKUP_SECONDS:
            request.unlink(missing_ok=True)
            raise EdgeError(f"timed out: the edge service did not take the request within {PICKUP_SECONDS:g} s "
                            "(is it stuck? `edge status`, `journalctl -u edge`)")
        if taken_at is not None and now - taken_at > budget:
            (folder / f"{rid}.cancel").touch()
            raise EdgeError(f"timed out: the edge service did not finish recording within {budget:g} s "
                            "(`journalctl -u edge` says why)")
        if alive is not None and not alive():
            request.unlink(missing_ok=True)
            raise EdgeError("the edge service stopped before the recording was done: nothing was added")
        wake.wait(0.1 if taken_at is not None else POLL / 5)


def _show(log: Path, shown: int, say) -> int:
    """Print the lines of ``log`` after the first ``shown`` bytes (whole lines only); the bytes shown now."""
    try:
        data = log.read_bytes()
    except OSError:
        return shown
    end = data.rfind(b"\n") + 1
    for line in data[shown:end].decode("utf-8", "replace").splitlines():
        say(line)
    return max(shown, end)
