"""`edge run --demo`: the daemon on a short clip of a real action, for a machine without a camera.

The clip is the TF Lite Raspberry Pi example's own ``carving_ice.mp4``
(tensorflow/examples, Apache-2.0, 123 KB), installed next to the model by
``install.sh`` (``edge models fetch demo``, sha256 checked). It plays in a loop
in real time through the configured model, with one watch rule on its action,
a JSONL log and an overlay snapshot in a temporary folder; the log lines are
printed as they are written, so a newcomer sees predictions and an event
within seconds.

An interactive ``edge run`` that finds no camera plays the demo too (and says
so); the service never does: it has no terminal, and systemd sets
``INVOCATION_ID`` / ``NOTIFY_SOCKET``; there it waits for its camera.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.config import Config

logger = logging.getLogger(__name__)

ENTRY = "demo"  # the manifest's clips.demo
LABEL = "carving ice"  # what the clip shows (a Kinetics-600 class)


def clip_path() -> Path:
    """The installed demo clip, or an EdgeError saying how to install it."""
    from edge import models

    entry = models.load_manifest().get(ENTRY)
    path = models.model_dir() / entry.file
    if not path.is_file():
        raise EdgeError(f"the demo clip is not installed ({path}): run `edge models fetch {ENTRY}` "
                        "(./install.sh does it)")
    return path


def interactive(stdin=None, environ=None) -> bool:
    """A person at a terminal, not systemd: a TTY and none of the variables systemd sets for a service."""
    stdin = sys.stdin if stdin is None else stdin
    environ = os.environ if environ is None else environ
    if environ.get("INVOCATION_ID") or environ.get("NOTIFY_SOCKET"):
        return False
    try:
        return stdin.isatty()
    except (AttributeError, ValueError):
        return False


def no_camera(cfg: Config) -> str | None:
    """Why no camera would be found for ``cfg`` (source kind auto), or None when one is there (or not asked for)."""
    if cfg.source.kind != "auto" or cfg.source.spec not in (None, "auto"):
        return None
    from edge.capture.auto import default_probes

    s = cfg.source
    tried = []
    for probe in default_probes():  # what AutoSource.open would try, without opening the camera
        found = probe(s.width, s.height, s.fps)
        if not isinstance(found, str):
            return None
        tried.append(found)
    return "no camera found, tried: " + "; ".join(tried)


def demo_config(cfg: Config, folder: Path) -> Config:
    """``cfg`` playing the demo clip in a loop, one rule on its action, a log and an overlay snapshot in ``folder``."""
    from edge.config import LogSinkConfig, OverlaySinkConfig, WatchRule

    cfg = cfg.model_copy(deep=True)
    cfg.source.kind, cfg.source.spec, cfg.source.loop = "file", str(clip_path()), True
    cfg.watch = [WatchRule(name="carving", labels=[LABEL], enter=0.5, exit=0.3, min_duration=1.0, cooldown=5)]
    cfg.sinks = [LogSinkConfig(path=str(folder / "edge-demo.jsonl"), prediction_every=1.0),
                 OverlaySinkConfig(display="snapshot", snapshot_path=str(folder / "edge-demo.jpg"), snapshot_every=1.0)]
    cfg.status.path = str(folder / "status.json")
    cfg.status.stats_every = 10.0
    return cfg


def run(cfg: Config, config_path: Path | None, overrides, out=None) -> int:
    """Run the daemon on the demo clip until Ctrl-C, printing its log lines as they are written."""
    from edge.daemon import Daemon

    out = sys.stdout if out is None else out
    folder = Path(tempfile.gettempdir()) / "edge-demo"
    folder.mkdir(parents=True, exist_ok=True)
    cfg = demo_config(cfg, folder)
    log = Path(cfg.sinks[0].path)
    print(f"demo: {cfg.source.spec} in a loop (ice carving; TF Lite example clip, Apache-2.0)", file=out)
    print(f"demo: log {log}, overlay snapshot {cfg.sinks[1].snapshot_path} (refreshed every second); "
          "Ctrl-C stops", file=out, flush=True)
    log.unlink(missing_ok=True)
    daemon = Daemon(cfg, overrides, config_path=None)
    printer = threading.Thread(target=_print_log, args=(log, daemon, out), name="demo-printer", daemon=True)
    printer.start()
    try:
        return daemon.run()
    finally:
        daemon.stop_event.set()
        printer.join(2.0)


def _print_log(log: Path, daemon, out) -> None:
    from edge.status import tail

    while not daemon.ready.wait(0.5):  # the first lines come with the first inference
        if daemon.stop_event.is_set():
            return
    try:
        tail(log, lines=100, follow=True, out=out, stop=daemon.stop_event.is_set)
    except EdgeError as err:
        logger.warning("demo: cannot show %s: %s", log, err)


__all__ = ["clip_path", "demo_config", "interactive", "no_camera", "run"]
