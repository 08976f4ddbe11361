"""Sinks: where predictions and events go. A registry by config name, imported lazily.

Built-in sinks are declared once, in edge/config.py (each config class names its ``implementation``);
``REGISTRY`` maps their names to ``"module:Class"``, imported on
first use, so a Pi without gpiozero never imports it. Third-party sinks
register in the ``edge.sinks`` entry-point group under their config ``type``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging

from edge.config import BUILTIN_SINK_CONFIGS, format_errors
from edge.errors import EdgeError
from edge.plugins import SINK_GROUP, sink_plugins
from edge.sinks.base import Prediction, Sink, SinkContext, SinkRunner

logger = logging.getLogger(__name__)

REGISTRY = {c.model_fields["type"].default: c.implementation for c in BUILTIN_SINK_CONFIGS}  # name -> "module:Class"
ENTRY_POINT_GROUP = SINK_GROUP


def _plugins() -> dict[str, importlib.metadata.EntryPoint]:
    return sink_plugins()


def known() -> list[str]:
    return sorted(set(REGISTRY) | set(_plugins()))


def sink_class(kind: str) -> type[Sink]:
    """The Sink class for a config ``type``; an unknown name lists the known ones."""
    if kind in REGISTRY:
        module, _, cls = REGISTRY[kind].partition(":")
        return getattr(importlib.import_module(module), cls)
    plugins = _plugins()
    if kind in plugins:
        try:
            return plugins[kind].load()
        except Exception as err:  # a broken third-party package must not hide which one it is
            raise EdgeError(f"sink plug-in {kind!r} ({plugins[kind].value}) failed to load: {err}") from None
    raise EdgeError(f"unknown sink type {kind!r} (known: {', '.join(known())})")


def build(cfg, ctx: SinkContext) -> SinkRunner:
    """A started-later SinkRunner around the sink that ``cfg.type`` names."""
    cls = sink_class(cfg.type)
    options = getattr(cls, "Config", None)
    if options is not None and not isinstance(cfg, options):
        from pydantic import ValidationError

        try:
            cfg = options.model_validate(cfg.model_dump())
        except ValidationError as err:
            raise EdgeError(f"sink {cfg.type}: {format_errors(err)}") from None
    return SinkRunner(cls(cfg, ctx), queue_size=getattr(cfg, "queue", 64))


__all__ = ["Prediction", "Sink", "SinkContext", "SinkRunner", "REGISTRY", "build", "known", "sink_class"]
