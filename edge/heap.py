"""Hand the heap's free memory back to the system: glibc's ``malloc_trim``.

glibc keeps memory freed by big, short-lived buffers (decoded pictures, frames
on their way to a sink) inside its heap, where a later allocation may not fit:
a long run's RSS then steps up by a few MB at random moments and stays there,
though nothing is leaked (``edge bench`` and ``benchmarks/soak.py`` measured
it). On a 512 MB board those pages are better back with the system, so the
daemon trims once a minute; the benchmark trims before it reads what is in use.
"""

from __future__ import annotations

import ctypes
import functools


@functools.lru_cache(maxsize=1)
def malloc_trim():
    """glibc's ``malloc_trim``, or None (musl, macOS: nothing to hand back this way)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def trim() -> bool:
    """Give the heap's free pages back (``malloc_trim(0)``); False where there is no glibc."""
    fn = malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


__all__ = ["malloc_trim", "trim"]
