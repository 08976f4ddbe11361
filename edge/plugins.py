"""Third-party sinks: the ``edge.sinks`` entry-point group, read in one place (config validation and the registry)."""

from __future__ import annotations

import importlib.metadata

SINK_GROUP = "edge.sinks"


def sink_plugins() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed sink plug-ins by their config ``type``."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=SINK_GROUP)}


__all__ = ["SINK_GROUP", "sink_plugins"]
