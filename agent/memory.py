"""Giving the C heap's free memory back to the operating system (glibc's `malloc_trim`).

glibc keeps memory that Python, llama.cpp, Chroma and numpy have freed inside its heaps (one per thread
arena) for reuse, so a process's RSS after a burst of work (a learning run, a diagnosis backlog) stays at the
burst's high-water mark. `malloc_trim(0)` returns the free pages of every arena. Elsewhere (musl, macOS)
there is no such call and `trim()` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from typing import Any

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


def can_trim() -> bool:
    """Whether this C library has `malloc_trim` (glibc)."""
    return _malloc_trim() is not None


def trim() -> bool:
    """Return free heap memory to the OS. True when some was released; False if none or not glibc."""
    function = _malloc_trim()
    if function is None:
        return False
    released = bool(function(0))
    log.debug("malloc_trim released memory: %s", released)
    return released
