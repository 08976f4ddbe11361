"""What ``edge check-config`` checks: what the daemon's start would trip on, without running it.

The unit's ExecStartPre runs this, so a broken model, a label file that does not
match the model's logits, a watch-rule label the model does not have, a sink path
that cannot be written or a malformed source is one line in the journal and no
start, instead of a restart loop. It loads the model (interpreter and signature,
as the daemon does) but runs no inference: well under a second on a Pi 4.

Every problem found is reported, each naming its key (``sinks[0].path: ...``),
joined into the one line an :class:`EdgeError` prints. Things that may change by
the time the daemon starts (a camera not plugged in yet) are warnings, not errors.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from edge import config as config_mod
from edge.config import Config
from edge.errors import EdgeError

logger = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "rtp", "srt", "tcp")

# sink config fields that name a file (its folder must be writable) or a folder the sink writes into,
# and where a relative path goes (SinkContext.logs_path: $LOGS_DIRECTORY, state_path: $STATE_DIRECTORY)
FILE_FIELDS = {"path": "logs_path", "snapshot_path": "state_path"}
DIR_FIELDS = {"dir": "state_path", "spool_dir": "state_path"}


@dataclass
class Report:
    path: Path
    empty: bool = False
    model: str = ""  # what the model line says: name, classes, split or cumulative
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cfg: Config | None = None
    missing_head: str | None = None  # model.head's file is not there: rules on its classes are warned of, not errors
    inactive: list[str] = field(default_factory=list)  # rules the daemon will start without (their head is gone)

    def summary(self) -> str:
        cfg = self.cfg
        rules = ", ".join(r.name + (" (inactive)" if r.name in self.inactive else "") for r in cfg.watch) or "none"
        sinks = ", ".join(s.type for s in cfg.sinks) or "none"
        head = f"{self.path}: ok" + (", empty: running every default" if self.empty else "")
        return f"{head} (model {self.model}; source {cfg.source.kind}; rules: {rules}; sinks: {sinks})"


def check_config(path: str | os.PathLike[str]) -> Report:
    """Validate ``path`` as the daemon would use it. EdgeError (one line, every problem) when it would fail."""
    path = Path(path)
    cfg = config_mod.load(path)  # schema errors: already one line naming the key
    report = Report(path, empty=_is_empty(path), cfg=cfg)
    labels = check_model(cfg, report)
    if labels is not None:
        check_rule_labels(cfg, labels, report)
    check_source(cfg, report)
    check_sink_paths(cfg, report)
    if any(getattr(s, "type", None) == "notify" for s in cfg.sinks):  # Apprise parses each URL, nothing is sent
        from edge.sinks.notify import check_urls

        report.errors += check_urls(cfg)
    check_status_path(cfg, report)
    if report.errors:
        raise EdgeError(f"{path}: " + "; ".join(report.errors))
    return report


def _is_empty(path: Path) -> bool:
    try:
        return not yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return False


# --------------------------------------------------------------------------- model and labels


def check_model(cfg: Config, report: Report) -> list[str] | None:
    """Load the model(s) as the daemon does (file, flatbuffer, signature, label count); the labels, or None."""
    from edge.engine import Engine

    try:
        engine = Engine(cfg.model)
    except EdgeError as err:
        report.errors.append(f"model: {err}")
        return None
    except (ValueError, RuntimeError) as err:  # a policy that cannot run on this model
        report.errors.append(f"model.state_policy: {err}")
        return None
    m = engine.model
    reason = split_problem(m)
    how = "splits at its head pool" if reason is None else f"will run cumulative: {reason}"
    report.model = f"{engine.describe_models()}: {m.num_classes} classes, {how}"
    if reason is not None and cfg.model.state_policy != "cumulative":
        report.warnings.append(f"model {m.name} cannot be split at its head pool ({reason}): "
                               f"it runs the cumulative policy, not {cfg.model.state_policy}")
    if cfg.model.head:  # learned classes (edge learn): the head file against this model; its names are labels too
        from edge.learn import head_path, load_learned, missing_head

        missing = missing_head(cfg.model)
        if missing:  # the daemon starts without it (and says so): a warning, not a refused start
            report.warnings.append(missing)
            report.missing_head = str(head_path(None, cfg.model.head))
            return engine.labels
        try:
            learned = load_learned(cfg.model, engine)
        except EdgeError as err:
            report.errors.append(f"model.head: {err}")
            return None
        report.model += f", {learned.describe()}"
        return learned.labels
    return engine.labels


def split_problem(model) -> str | None:
    """None when the model splits at its head pool, else why it will run cumulative.

    The model says so itself when it was split at load (``split_reason``); otherwise the split
    module's own check is asked (edge/split.py, the engine's); without either, nothing is claimed.
    """
    if hasattr(model, "split_reason"):
        return model.split_reason
    try:
        from edge.split import check as split_check
    except ImportError:
        return None
    return split_check(model.path.read_bytes())


def check_rule_labels(cfg: Config, labels: list[str], report: Report) -> None:
    from edge.smoothing import RuleTracker

    try:
        tracker = RuleTracker(cfg.watch, labels, missing_head=report.missing_head)
    except EdgeError as err:
        report.errors.append(str(err))
        return
    report.inactive = list(tracker.inactive)
    report.warnings += tracker.inactive.values()  # the daemon starts without these rules (and says so)


# --------------------------------------------------------------------------- source


def check_source(cfg: Config, report: Report) -> None:
    """The source spec is well formed; a file source is there and decodable."""
    from edge.capture.base import describe_spec, redact

    s = cfg.source
    kind = describe_spec(s.spec) if s.kind == "auto" and s.spec not in (None, "auto") else s.kind
    if kind == "file":
        if not s.spec:
            report.errors.append("source.spec: source.kind is file but no video path is given")
            return
        problem = _video_problem(Path(s.spec).expanduser())
        if problem:
            report.errors.append(f"source.spec: {problem}")
    elif kind == "rtsp":
        if not s.spec:
            report.errors.append("source.spec: source.kind is rtsp but no URL is given (rtsp://host[:port]/path)")
            return
        problem = _url_problem(s.spec)
        if problem:
            shown = repr(redact(s.spec)) if "://" in s.spec else "the URL"  # never echo what may hold a password
            report.errors.append(f"source.spec: {shown} {problem}")
    elif kind == "v4l2":
        from edge.capture.opencv import device_index

        spec = s.spec or "0"
        try:
            index = device_index(spec)
        except EdgeError as err:
            report.errors.append(f"source.spec: {err}")
            return
        if not Path(f"/dev/video{index}").exists():
            report.warnings.append(f"source.spec: camera {spec} is not present now (the daemon waits for it)")
    elif kind == "picamera2" and importlib.util.find_spec("picamera2") is None:
        from edge.capture.picamera import INSTALL_HINT

        report.errors.append(f"source.kind: {INSTALL_HINT}")


def _video_problem(path: Path) -> str | None:
    if not path.exists():
        return f"video file {path} does not exist"
    if path.is_dir():
        return f"{path} is a folder, not a video file"
    if not os.access(path, os.R_OK):
        return f"video file {path} is not readable (permissions)"
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened() or not cap.grab():
            return f"video file {path} could not be decoded (corrupt, empty, or an unsupported codec)"
    finally:
        cap.release()
    return None


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not a number
    except ValueError:
        return "has a port that is not a number (rtsp://host:554/path)"
    if parts.scheme.lower() not in URL_SCHEMES:
        return f"is not a stream URL: the scheme must be one of {', '.join(URL_SCHEMES)} (rtsp://host[:port]/path)"
    if not parts.hostname:
        return "has no host (rtsp://host[:port]/path)"
    if port == 0:
        return "has port 0"
    return None


# --------------------------------------------------------------------------- paths


def check_sink_paths(cfg: Config, report: Report) -> None:
    """Every file a sink writes has a writable folder; every folder it writes into can be."""
    from edge.sinks.base import SinkContext

    for i, sink in enumerate(cfg.sinks):
        fields = sink.model_dump()
        for key, env in FILE_FIELDS.items():
            if isinstance(fields.get(key), str) and _uses(sink, key):
                problem = file_problem(getattr(SinkContext, env)(fields[key]))
                if problem:
                    report.errors.append(f"sinks[{i}].{key}: {problem}")
        for key, env in DIR_FIELDS.items():
            if isinstance(fields.get(key), str):
                problem = dir_problem(getattr(SinkContext, env)(fields[key]))
                if problem:
                    report.errors.append(f"sinks[{i}].{key}: {problem}")
        if getattr(sink, "type", None) == "overlay" and sink.display == "fbdev":
            if not os.access(sink.fb_device, os.W_OK):
                report.errors.append(f"sinks[{i}].fb_device: {sink.fb_device} is not there or not writable "
                                     "(is the user in the video group?)")
        urls_file = fields.get("urls_file")
        if isinstance(urls_file, str) and not os.access(SinkContext.state_path(urls_file), os.R_OK):
            report.errors.append(f"sinks[{i}].urls_file: {urls_file} does not exist or is not readable")


def _uses(sink, key: str) -> bool:
    """An overlay writes its snapshot only when it may fall back to one."""
    return not (key == "snapshot_path" and getattr(sink, "display", "snapshot") not in ("snapshot", "auto"))


def check_status_path(cfg: Config, report: Report) -> None:
    if cfg.status.path:
        problem = file_problem(Path(cfg.status.path).expanduser())
        if problem:
            report.errors.append(f"status.path: {problem}")


def file_problem(path: Path) -> str | None:
    """Why a file at ``path`` cannot be written, or None."""
    if path.is_dir():
        return f"{path} is a folder: give a file name in it (e.g. {path / 'edge.jsonl'})"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"{path} is not writable by this user"
    return _folder_problem(path.parent, f"{path}")


def dir_problem(path: Path) -> str | None:
    """Why files cannot be written into the folder ``path`` (created at start when missing), or None."""
    if path.exists():
        if not path.is_dir():
            return f"{path} is a file, not a folder"
        return None if os.access(path, os.W_OK | os.X_OK) else f"folder {path} is not writable by this user"
    return _folder_problem(path.parent, f"folder {path}")


def _folder_problem(folder: Path, what: str) -> str | None:
    folder = folder if str(folder) else Path(".")
    if not folder.exists():
        return f"{what}: its folder {folder} does not exist (create it, or fix the path)"
    if not folder.is_dir():
        return f"{what}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{what}: folder {folder} is read-only or not writable by this user"
    return None
