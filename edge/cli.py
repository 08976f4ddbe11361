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

from edge import __version__
from edge.errors import EdgeError

logger = logging.getLogger(__name__)


class _DropDelegateBanner(logging.Filter):
    """Drop the "Created TensorFlow Lite XNNPACK delegate" banner and friends."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "XNNPACK delegate" not in record.getMessage()


def setup_logging(verbose: bool = False) -> None:
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
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # The TFLite C++ runtime prints its own INFO lines on stderr; quieten them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# --------------------------------------------------------------------------- classify


def add_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify a video file (5 fps by timestamp)")
    p.add_argument("video", help="a video file OpenCV can decode (mp4, mkv, avi, ...)")
    _add_model_args(p)
    p.add_argument("--top", type=int, default=5, metavar="K", help="how many actions to print (default 5)")
    p.add_argument("--every", type=float, default=None, metavar="SECONDS",
                   help="also print the running top-1 every SECONDS of video")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_classify)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="a0, a1, a2 (from models/), or a path to a stream .tflite (default a0)")
    p.add_argument("--labels", default=None, help="label file, one class a line, in logit order")
    p.add_argument("--state-policy", choices=["cumulative", "capped", "windowed"], default=None,
                   help="how the model forgets the past (default: capped)")
    p.add_argument("--cap", type=int, default=None, metavar="N",
                   help="capped policy: frames the head averages over (default from config)")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="windowed policy: reset period in seconds (default from config)")
    p.add_argument("--preprocess", choices=["resize", "center-crop"], default=None,
                   help="how a frame is fitted to the model input")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads (default 1)")


def cmd_classify(args: argparse.Namespace) -> int:
    from edge.classify import classify_file, format_result

    result = classify_file(args.video, _engine_settings(args), top=args.top, every=args.every)
    if args.json:
        import json

        print(json.dumps(result, indent=None))
    else:
        print(format_result(result))
    return 0


def _engine_settings(args: argparse.Namespace):
    """The ``model:`` section of the default config, overridden by command-line flags."""
    from edge.config import ModelConfig

    data = {}
    for key, attr in (("name", "model"), ("labels", "labels"), ("state_policy", "state_policy"),
                      ("cap_frames", "cap"), ("window_seconds", "window"),
                      ("preprocess", "preprocess"), ("threads", "threads")):
        value = getattr(args, attr, None)
        if value is not None:
            data[key] = value
    return ModelConfig.from_cli(data)


# --------------------------------------------------------------------------- main


COMMANDS = [add_classify]


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
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except EdgeError as err:
        print(f"edge: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `edge tail | head`
        return 0
