"""Command line: one sub-command per thing a user does.

Each sub-command has an ``add_<name>`` function that declares its arguments and a
``cmd_<name>`` function that runs it. The heavy modules are imported inside the
``cmd_`` functions so ``edge --help`` and ``edge status`` stay quick on a Pi Zero.
A user mistake raises :class:`edge.errors.EdgeError`; ``main`` prints it as one
line and exits 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from edge import __version__
from edge.choices import PreprocessMode, values
from edge.errors import EdgeError

logger = logging.getLogger(__name__)


class _DropDelegateBanner(logging.Filter):
    """Drop the "Created TensorFlow Lite XNNPACK delegate" banner and friends."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "XNNPACK delegate" not in record.getMessage()


def setup_logging(verbose: bool = False, level: int = logging.INFO) -> None:
    """Configure logging once, for the CLI and the service.

    Under journald (``JOURNAL_STREAM`` set) timestamps are left to journald.
    """
    if os.environ.get("JOURNAL_STREAM"):
        fmt = "%(levelname)s %(name)s: %(message)s"
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    handler.addFilter(_DropDelegateBanner())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else level)
    # Native libraries print on stderr, past Python logging: keep them to real errors.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET: we report unreadable videos ourselves


# --------------------------------------------------------------------------- classify


def add_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify a video file (5 fps by timestamp)")
    p.add_argument("video", help="a video file OpenCV can decode (mp4, mkv, avi, ...)")
    _add_model_args(p)
    p.add_argument("--top", type=_positive(int), default=5, metavar="K", help="how many actions to print (default 5)")
    p.add_argument("--every", type=_positive(float), default=None, metavar="SECONDS",
                   help="also print the running top-1 every SECONDS of video")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_classify)


def _positive(kind):
    """An argparse type: a number > 0 (``--every 0`` would never advance the timeline)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="a0, a1, a2 (from models/), or a path to a stream .tflite (default a0)")
    p.add_argument("--labels", default=None, help="label file, one class a line, in logit order")
    p.add_argument("--state-policy", default=None, metavar="window|ema|cumulative",
                   help="how the model forgets the past: window (default), ema, or cumulative (never)")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="window policy: seconds the answer averages over (default from config: 5)")
    p.add_argument("--half-life", type=float, default=None, metavar="SECONDS",
                   help="ema policy: seconds after which a frame counts half (default from config: 2)")
    p.add_argument("--cap", type=int, default=None, help=argparse.SUPPRESS)  # removed: a clear error, not "unrecognized"
    p.add_argument("--preprocess", choices=values(PreprocessMode), default=None,
                   help="how a frame is fitted to the model input")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads (default 1)")
    p.add_argument("--ensemble", default=None, metavar="M1,M2",
                   help="temporal ensemble: two or more models (names or paths, comma-separated), each fed every "
                        "other frame, logits averaged (replaces --model)")
    p.add_argument("--head", default=None, metavar="FILE",
                   help="learned classes (edge learn): a head file; its classes are labels too")
    p.add_argument("--head-mode", choices=["add", "replace"], default=None,
                   help="add (default): beside the model's labels; replace: only the learned classes and 'unknown'")


def cmd_classify(args: argparse.Namespace) -> int:
    from edge.classify import classify_file, print_result

    print_result(classify_file(args.video, _engine_settings(args), top=args.top, every=args.every), args.json)
    return 0


def _engine_settings(args: argparse.Namespace):
    """The ``model:`` section of the default config, overridden by command-line flags."""
    from edge.config import ModelConfig

    if getattr(args, "cap", None) is not None:
        raise EdgeError("--cap was removed with the capped policy: use --state-policy window --window SECONDS "
                        "(25 frames at 5 fps = --window 5)")
    flags = {"name": "model", "labels": "labels", "state_policy": "state_policy", "window_seconds": "window",
             "half_life_seconds": "half_life", "preprocess": "preprocess", "threads": "threads", "ensemble": "ensemble"}
    data = {key: getattr(args, attr) for key, attr in flags.items() if getattr(args, attr, None) is not None}
    if getattr(args, "head", None):  # a flag's path is the shell's (model.head in a config is under models/)
        from edge.learn import flag_head

        data["head"] = str(flag_head(args.head))
    if getattr(args, "head_mode", None):
        data["head_mode"] = args.head_mode
    if "ensemble" in data:
        data["ensemble"] = [m.strip() for m in data["ensemble"].split(",") if m.strip()]
    return ModelConfig.from_cli(data, {key: "--" + attr.replace("_", "-") for key, attr in flags.items()})


# --------------------------------------------------------------------------- models


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, fetch and verify the MoViNet models")
    actions = p.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the known models: input size, installed, sha256 status")
    f = actions.add_parser("fetch", help="download models (a model brings its label file along)")
    f.add_argument("names", nargs="+", metavar="NAME", help="a0, a1, a2, labels or all")
    f.add_argument("--from", dest="source", metavar="DIR",
                   help="copy the files from a local folder instead of downloading (sha256 still checked)")
    f.add_argument("--force", action="store_true", help="replace files that are already installed")
    actions.add_parser("verify", help="check installed files against their sha256 (exit 1 on a mismatch)")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from edge import models

    folder = models.model_dir()
    if args.models_action == "fetch":
        if args.source:
            names = None if "all" in args.names else args.names
            models.install_from(args.source, folder, names, force=args.force)
        else:
            models.fetch(args.names, folder, force=args.force)
        return 0
    rows = models.verify(folder)
    print(models.format_rows(rows, folder))
    if args.models_action == "verify":
        bad = [r.name for r in rows if r.status == "mismatch"]
        if bad:
            print(f"sha256 mismatch: {', '.join(bad)}: run \"edge models fetch {' '.join(bad)} --force\"",
                  file=sys.stderr)
            return 1
    return 0


# --------------------------------------------------------------------------- run and config


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the daemon until stopped (camera, file or stream -> sinks)")
    p.add_argument("-c", "--config", default=None, help="config file (default: $EDGE_CONFIG, /etc/edge/config.yaml, ./config.yaml)")
    p.add_argument("--source", default=None,
                   help="override source: a video file, a device (0, /dev/video0), an rtsp:// URL, picamera2 or auto")
    p.add_argument("--fast", action="store_true", help="file sources: as fast as the pipeline takes frames, not real time")
    p.add_argument("--log", default=None, metavar="PATH", help="write the JSONL log here (handy for a dry run)")
    p.add_argument("--head", default=None, metavar="FILE", help="learned classes (edge learn): a head file (model.head)")
    p.add_argument("--status", default=None, metavar="PATH",
                   help="status.json here (status.path): one daemon per status file, so a dry run beside the service needs its own")
    p.add_argument("--demo", action="store_true",
                   help="play the demo clip in a loop (what an interactive run does when no camera is found)")
    p.set_defaults(func=cmd_run)


def _config_file(path: str | None):
    from edge import config

    return Path(path) if path else config.default_path()


def cmd_run(args: argparse.Namespace) -> int:
    from edge import config, demo
    from edge.daemon import Daemon, Overrides

    path = _config_file(args.config)
    if path.exists() or args.config:
        cfg = config.load(path)
    else:
        logger.warning("no config file at %s: running with the defaults", path)
        cfg, path = config.Config(), None
    if args.head:  # a mistyped --head is an error; a configured model.head that vanished is run without
        from edge.learn import flag_head

        flag_head(args.head)
    overrides = Overrides(source=args.source, fast=args.fast, log=args.log, head=args.head, status=args.status)
    if args.demo or (not args.source and demo.interactive() and _no_camera(overrides.apply(cfg))):
        return demo.run(cfg, path, Overrides(head=args.head))
    daemon = Daemon(cfg, overrides, config_path=path)
    return daemon.run()


def _no_camera(cfg) -> bool:
    """An interactive run that would end at once with "no camera found" plays the demo clip instead."""
    from edge import demo

    why = demo.no_camera(cfg)
    if why is not None:
        logger.warning("%s; playing the demo clip instead (edge run --demo; the service waits for its camera)", why)
    return why is not None


def add_check_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", help="validate a config file (exit 0 valid, 2 invalid)")
    p.add_argument("-c", "--config", default=None, help="config file (default: as for run)")
    p.set_defaults(func=cmd_check_config)


def cmd_check_config(args: argparse.Namespace) -> int:
    """What start would check (model, labels, rules, source, sink paths): one line, exit 0 or 2."""
    from edge.checks import check_config

    path = _config_file(args.config)
    report = check_config(path)
    for warning in report.warnings:
        print(f"{path}: warning: {warning}", file=sys.stderr)
    print(report.summary())
    return 0


def add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="config helpers: `edge config schema` prints the JSON Schema")
    p.add_argument("what", choices=["schema"], help="schema: the JSON Schema of config.yaml (for editors)")
    p.set_defaults(func=cmd_config)


def cmd_config(args: argparse.Namespace) -> int:
    import json

    from edge import config

    print(json.dumps(config.json_schema(), indent=2))
    return 0


# --------------------------------------------------------------------------- status and tail


def add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show the running daemon's status")
    p.add_argument("--json", action="store_true", help="print status.json as it is")
    p.add_argument("--file", default=None, help="status file (default: found under /run/edge or the runtime dir)")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from edge.service import find_status
    from edge.status import format_status

    path = find_status(args.file)
    if path is None or not path.exists():
        raise EdgeError("no status file found (is the daemon running? `systemctl status edge`): "
                        "pass --file if status.path is set in the config")
    if path.is_dir():
        raise EdgeError(f"{path} is a folder: pass the status file in it (--file {path / 'status.json'})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise EdgeError(f"cannot read status file {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise EdgeError(f"cannot read status file {path}: it is not JSON ({err}); pass the status.json the daemon writes") from None
    if not isinstance(data, dict):
        raise EdgeError(f"status file {path} is not an edge status (a JSON object expected, found a "
                        f"{type(data).__name__}): pass the status.json the daemon writes")
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    try:
        print(format_status(data, path))
    except (AttributeError, TypeError, KeyError, ValueError) as err:
        raise EdgeError(f"status file {path} is not an edge status ({type(err).__name__}: {err}): "
                        "pass the status.json the daemon writes, or --json to see it as it is") from None
    return 0


def add_tail(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tail", help="follow the JSONL log (events and predictions)")
    p.add_argument("-c", "--config", default=None, help="config file whose log sink to follow")
    p.add_argument("--file", default=None, help="log file to follow (default: the config's log sink)")
    p.add_argument("-n", "--lines", type=int, default=10, help="lines of history first (default 10)")
    p.add_argument("--events", action="store_true", help="only event lines")
    p.add_argument("--raw", action="store_true", help="print the JSON lines as they are")
    p.add_argument("--no-follow", action="store_true", help="print and exit")
    p.set_defaults(func=cmd_tail)


def cmd_tail(args: argparse.Namespace) -> int:
    from edge.status import log_path_from_config, tail

    path = Path(args.file) if args.file else log_path_from_config(_config_file(args.config))
    return tail(path, lines=args.lines, follow=not args.no_follow, events_only=args.events, raw=args.raw)


# --------------------------------------------------------------------------- doctor


def add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the install and this board for known problems, with the fix for each")
    p.add_argument("--json", action="store_true", help="print the checks as a JSON list")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge import doctor

    results = doctor.run()
    print(doctor.format_json(results) if args.json else doctor.format_checks(results))
    return doctor.exit_code(results)


# --------------------------------------------------------------------------- bench


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark the pipeline stage by stage on a video file")
    p.add_argument("--video", default=None, help="video to loop (default: a shared sample clip if present)")
    p.add_argument("--frames", type=int, default=None,
                   help="model frames to run (default 10000; with --all-models 300 per model)")
    _add_model_args(p)
    p.add_argument("--all-models", action="store_true",
                   help="time every installed model (1 thread) and recommend the largest that fits this board; "
                        "saved for edge doctor")
    p.add_argument("--max-share", type=float, default=None, metavar="FRACTION",
                   help="--all-models: largest share of the 5 fps budget a recommended model may use (default 0.5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from edge import bench

    video = args.video or bench.default_video()
    if video is None:
        raise EdgeError("no video to benchmark on: pass --video FILE")
    frames = args.frames if args.frames is not None else (bench.ALL_MODELS_FRAMES if args.all_models else 10000)
    if frames < 10:
        raise EdgeError("--frames must be at least 10")
    if not args.all_models:
        result = bench.run_bench(_engine_settings(args), video, frames=frames)
        print(json.dumps(result) if args.json else bench.format_bench(result))
        return 0
    if args.model or args.ensemble or args.threads:
        raise EdgeError("--all-models times every installed model with 1 thread: drop --model, --ensemble and --threads")
    limit = args.max_share if args.max_share is not None else bench.BUDGET_LIMIT
    if not 0 < limit <= 1:
        raise EdgeError("--max-share must be between 0 and 1 (0.5 = half the frame budget)")
    result = bench.run_all_models(_engine_settings(args), video, frames=frames, limit=limit)
    try:
        saved = bench.save_cached(result)
    except EdgeError as err:
        logger.warning("%s: edge doctor will not show this recommendation", err)
        saved = None
    if args.json:
        print(json.dumps(result))
    else:
        print(bench.format_all_models(result))
        if saved:
            print(f"saved to {saved} (edge doctor shows the recommendation)")
    return 0


# --------------------------------------------------------------------------- eval


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy on a labelled set of videos (top-1, top-5, per class, misses)")
    p.add_argument("dataset", metavar="DATASET",
                   help="a CSV with file,label columns (paths relative to it), or a folder of class folders "
                        "(carving_ice/clip.mp4)")
    _add_model_args(p)
    p.add_argument("--label-map", default=None, metavar="FILE",
                   help="YAML mapping dataset labels to model labels: dataset_label: [model label, ...]")
    p.add_argument("--confusion", default=None, metavar="OUT.png",
                   help="also draw the confusion matrix here (and write its counts to OUT.csv)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Exit 0, or 1 when some videos could not be read (they are listed, the rest still counted)."""
    import json

    from edge import evaluate
    from edge.engine import Engine

    samples = evaluate.load_dataset(args.dataset)
    label_map = evaluate.load_label_map(args.label_map) if args.label_map else None
    if args.confusion:
        evaluate.confusion_paths(args.confusion)  # refuse a bad output path before the run, not after
    engine = Engine(_engine_settings(args))
    from edge.learn import load_learned

    learned = load_learned(engine.cfg, engine)  # --head: a dataset may name the learned classes
    targets = evaluate.match_labels([s.label for s in samples], learned.labels if learned else engine.labels,
                                    label_map)
    report = evaluate.evaluate(samples, engine, targets, dataset=args.dataset)
    if args.confusion:
        png, table = evaluate.write_confusion(report["confusion"], args.confusion)
        report["confusion_png"], report["confusion_csv"] = str(png), str(table)
    print(json.dumps(report) if args.json else evaluate.format_report(report))
    return 1 if report["errors"] else 0


# --------------------------------------------------------------------------- learn


def add_learn(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("learn", help="teach it your own actions: a few clips per class, no training framework")
    actions = p.add_subparsers(dest="learn_action", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser, model: bool = False) -> None:
        q.add_argument("--head", default=None, metavar="FILE",
                       help="head file (default: model.head from the config, else models/my-actions.head)")
        q.add_argument("-c", "--config", default=None, help="config file (default: as for run)")
        if model:
            q.add_argument("--model", default=None, help="model to learn on (default: the config's model.name)")

    a = actions.add_parser("add", help="add clips to class NAME; or NAME is a folder laid out class_name/clip.mp4")
    a.add_argument("name", metavar="NAME", help="the class, or a folder of class folders (then no CLIP)")
    a.add_argument("clips", nargs="*", metavar="CLIP", help="video files, or folders of them")
    a.add_argument("--recording", default=None, metavar="ID",
                   help="these clips are one recording (default: each clip file is its own recording)")
    common(a, model=True)
    r = actions.add_parser("record", help="record clips of class NAME from the camera (a countdown before each) "
                                          "and add them")
    r.add_argument("name", metavar="NAME")
    r.add_argument("--seconds", type=_positive(float), default=4.0, help="length of each clip (default 4)")
    r.add_argument("--count", type=_positive(int), default=5, help="clips to record (default 5)")
    r.add_argument("--countdown", type=int, default=3, metavar="SECONDS", help="countdown before each clip (default 3)")
    r.add_argument("--source", default=None,
                   help="record from this instead of the config's source: a device (0, /dev/video0), a file or a URL")
    common(r, model=True)
    common(actions.add_parser("list", help="the classes, their examples and recordings"))
    rm = actions.add_parser("remove", help="forget class NAME")
    rm.add_argument("name", metavar="NAME")
    common(rm)
    e = actions.add_parser("eval", help="leave-one-recording-out accuracy, confusion table and the threshold")
    e.add_argument("--false-accept", type=float, default=None, metavar="RATE",
                   help="largest share of untaught actions that may be taken for a class (default: the head's, 0.05)")
    e.add_argument("--save", action="store_true", help="store that threshold (and rate) in the head file")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    common(e)
    p.set_defaults(func=cmd_learn)


RECORD_LOCK_WAIT = 120.0  # seconds `edge learn record` waits, its clips recorded, for another run to save the head


def cmd_learn(args: argparse.Namespace) -> int:
    import contextlib

    from edge import config, learn

    path = _config_file(args.config)
    cfg = config.load(path) if path.exists() or args.config else config.Config()
    head_file = learn.head_path(args.head, cfg.model.head)
    changes = args.learn_action in ("add", "remove") or getattr(args, "save", False)  # record: after recording
    with learn.head_lock(head_file) if changes else contextlib.nullcontext():  # one `edge learn` at a time
        return _learn(args, cfg, head_file)


def _learn(args: argparse.Namespace, cfg, head_file: Path) -> int:
    import json
    import shlex

    from edge import learn

    if args.learn_action in ("add", "record"):
        from edge import models
        from edge.engine import Engine

        settings = cfg.model.model_copy(update={"ensemble": []})
        if args.model:
            settings.name = args.model
        engine = Engine(settings)
        if not engine.split:
            raise EdgeError(f"model {engine.model.name} gives no head feature: learned classes need a MoViNet-style "
                            "stream model with a head pool (a0, a1, a2)")
        sha = models.sha256_file(engine.model.path)
        head = learn.open_or_new(head_file, engine.model.feature_size, engine.model.name, sha)
        if args.learn_action == "add":
            learn.add_clips(head, engine, learn.collect(args.name, args.clips), args.recording)
        else:
            learn.check_name(args.name)
            clips, session = _learn_record(args, cfg)
            # read again, locked: classes added (another `edge learn`) while this one recorded are kept; one
            # that is changing the head now is waited for a while (the clips are recorded: not lost to a refusal)
            then = f"add the clips just recorded: edge learn add {shlex.quote(args.name)} {' '.join(shlex.quote(str(c)) for c in clips)}"
            with learn.head_lock(head_file, wait=RECORD_LOCK_WAIT, then=then if clips else "run this again"):
                head = learn.open_or_new(head_file, engine.model.feature_size, engine.model.name, sha)
                if clips:
                    learn.add_clips(head, engine, [(args.name, clips)], session)
                _learn_save(head, head_file, cfg)
            return 0
        _learn_save(head, head_file, cfg)
        return 0
    if getattr(args, "false_accept", None) is not None and not 0 <= args.false_accept < 1:
        raise EdgeError("--false-accept must be a fraction from 0 to below 1 (0.05 = 5%)")
    head = learn.Head.load(head_file)
    if args.learn_action == "list":
        print(learn.format_list(head, str(head_file)))
    elif args.learn_action == "remove":
        print(f"removed class {head.remove(args.name)!r}")
        _learn_save(head, head_file, cfg)
    else:
        report = learn.evaluate(head, args.false_accept)
        print(json.dumps(report) if args.json else learn.format_eval(report, str(head_file)))
        if args.save:
            head.refit(report["false_accept_target"])
            _learn_save(head, head_file, cfg, summary="" if args.json else f"saved threshold {head.threshold:.3f} to "
                                                                          f"{head_file}")
    return 0


def _learn_save(head, head_file: Path, cfg, summary: str | None = None) -> None:
    """Write the head file, say what it holds (or ``summary``; "" says nothing) and how the service picks it up."""
    from edge import learn
    from edge.service import find_status

    head.save(head_file)
    if summary != "":
        print(learn.format_list(head, str(head_file)) if summary is None else summary)
    if summary != "" and cfg.model.head and learn.head_path(None, cfg.model.head) == head_file:
        if learn.service_pid(find_status(cfg.status.path)) is not None:
            print("the running service reads it on reload: sudo systemctl reload edge")


def _learn_record(args: argparse.Namespace, cfg):
    """Record through the running service (from its ring), else from the camera (or --source) itself, into the
    state directory; (clips, recording id)."""
    import time

    from edge import learn
    from edge.capture import SourceError, describe_spec, open_source
    from edge.service import find_status
    from edge.sinks.clip import safe_label, wall_stamp

    stamp = wall_stamp(time.time())
    status = find_status(cfg.status.path)
    pid = None if args.source else learn.service_pid(status)
    if pid is not None:  # the service has the camera: its ring has the frames (edge/learn_requests.py)
        from edge.learn_requests import record_through

        clips = record_through(status, pid, args.name, args.seconds, args.count, max(0, args.countdown), stamp,
                               alive=lambda: learn.service_pid(status) == pid)
        return clips, f"rec-{stamp}"
    kind, spec = (describe_spec(args.source), args.source) if args.source else (cfg.source.kind, cfg.source.spec)
    s = cfg.source
    source = open_source(kind, None if kind in ("auto", "picamera2") else spec, width=s.width, height=s.height,
                         fps=s.fps, paced=True)
    try:
        source.open()
    except SourceError as err:
        raise EdgeError(f"cannot open {source.name} to record: {err}") from None
    folder = learn.state_dir() / "learn" / safe_label(args.name)
    try:
        clips = learn.record_clips(source, args.seconds, args.count, folder, stamp, countdown=max(0, args.countdown))
    finally:
        source.close()
    return clips, f"rec-{stamp}"


# --------------------------------------------------------------------------- notify


def add_notify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notify", help="notify sink helpers: `edge notify test` sends a test message")
    p.add_argument("what", choices=["test"], help="test: one message through every configured notify URL, now")
    p.add_argument("-c", "--config", default=None, help="config file (default: as for run)")
    p.set_defaults(func=cmd_notify)


def cmd_notify(args: argparse.Namespace) -> int:
    """Exit 0 when every service took the test message, 1 when one did not."""
    from edge import config
    from edge.sinks.notify import send_test

    results = send_test(config.load(_config_file(args.config)))
    for name, ok, answer in results:
        print(f"{name}: {'ok' if ok else 'FAILED'}: {answer}")
    return 0 if all(ok for _, ok, _ in results) else 1


# --------------------------------------------------------------------------- main


COMMANDS = [add_run, add_classify, add_check_config, add_config, add_status, add_tail, add_bench, add_eval, add_models,
            add_doctor, add_notify, add_learn]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge", description="Always-on MoViNet video classification for Raspberry Pi-class boards.")
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # the daemon logs what it does; one-shot commands print their result and only warnings
    setup_logging(args.verbose, logging.INFO if args.command in ("run", "models") else logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except EdgeError as err:
        print(f"edge: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `edge tail | head`
        return 0
