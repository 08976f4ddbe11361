"""Each choice a user makes by name, declared once: config.py validates with these types, the CLI offers
their values, and the code that acts on them reads the same tuple (``values``)."""

from __future__ import annotations

from typing import Literal, get_args

PreprocessMode = Literal["resize", "center-crop"]  # how a frame is fitted to the model input (preprocess.py)
SmoothingMethod = Literal["ema", "window", "none"]  # over the probabilities, before the watch rules (smoothing.py)
SourceKind = Literal["auto", "picamera2", "v4l2", "file", "rtsp"]  # where frames come from (capture/)


def values(choice: object) -> tuple[str, ...]:
    """The names a choice type allows, in declaration order."""
    return get_args(choice)


__all__ = ["PreprocessMode", "SmoothingMethod", "SourceKind", "values"]
