"""Which TFLite interpreter package is present: ai_edge_litert first, then tflite_runtime.

``ai-edge-litert`` is the maintained successor of ``tflite-runtime``; it is about
10x faster here on MoViNet (XNNPACK), has wheels for current Pythons and works
with numpy 2. ``tflite-runtime`` 2.14 is kept as a fallback for boards where no
ai-edge-litert wheel exists; it needs Python <= 3.11 and numpy < 2.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
from dataclasses import dataclass
from typing import Any

from edge.errors import EdgeError

logger = logging.getLogger(__name__)

# (import path of the module holding Interpreter, distribution name)
CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


@dataclass(frozen=True)
class Backend:
    package: str  # distribution name, e.g. "ai-edge-litert"
    version: str
    interpreter: Any  # the Interpreter class

    def __str__(self) -> str:
        return f"{self.package} {self.version}"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=1)
def backend() -> Backend:
    """The interpreter package to use; raises EdgeError naming what to install."""
    problems = []
    for module, dist in CANDIDATES:
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            problems.append(f"{dist}: {err}")
            continue
        chosen = Backend(dist, _version(dist), mod.Interpreter)
        logger.debug("TFLite interpreter: %s", chosen)
        return chosen
    raise EdgeError(
        "no TFLite interpreter package could be imported ("
        + "; ".join(problems)
        + "): run ./install.sh, or `pip install ai-edge-litert`"
    )


def describe() -> str:
    """One line for logs and `edge doctor`: which interpreter package is in use."""
    try:
        return str(backend())
    except EdgeError as err:
        return f"none ({err})"
