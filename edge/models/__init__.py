"""Models: the manifest (manifest.py), the store used at run time (store.py: where, resolve, verify,
list) and fetching (fetch.py: download, progress, atomic commit), which only ``edge models fetch`` imports.

``from edge import models`` gives the store's API; ``models.fetch``, ``models.install_from`` and
``models.download_bar`` load fetch.py on first use, so the daemon never imports urllib or tarfile.
"""

from __future__ import annotations

import importlib
from typing import Any

from edge.models.manifest import ARCHIVES, MANIFEST_ENV, SECTIONS, Entry, Manifest, load_manifest
from edge.models.store import (DEFAULT_MODEL, DOWNLOADS, MODEL_DIR_ENV, STATUS_TEXT, SYSTEM_MODEL_DIR, Row,
                               format_rows, list_models, model_dir, read_downloads, resolve, sha256_file, verify)

_FETCH = ("fetch", "install_from", "download_bar", "Result", "ARCHIVE_MEMBER")


def __getattr__(name: str) -> Any:
    if name in _FETCH:
        module = importlib.import_module("edge.models.fetch")
        # importing the submodule bound ``edge.models.fetch`` to it: ``models.fetch`` stays the function
        globals().update({n: getattr(module, n) for n in _FETCH})
        return globals()[name]
    raise AttributeError(f"module 'edge.models' has no attribute {name!r}")


__all__ = ["ARCHIVES", "DEFAULT_MODEL", "DOWNLOADS", "MANIFEST_ENV", "MODEL_DIR_ENV", "SECTIONS", "STATUS_TEXT",
           "SYSTEM_MODEL_DIR", "Entry", "Manifest", "Row", "format_rows", "list_models", "load_manifest",
           "model_dir", "read_downloads", "resolve", "sha256_file", "verify", *_FETCH]
