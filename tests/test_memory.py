"""Giving freed C-heap memory back to the OS (glibc `malloc_trim`)."""

from __future__ import annotations

import ctypes
import platform

import pytest

from agent import memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trim_releases_freed_heap_pages() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # 4 KB blocks come from the heap (below the mmap threshold); the last one stays allocated so that free()
    # cannot shrink the heap from its top by itself: only malloc_trim can give the freed pages back.
    blocks = [libc.malloc(4096) for _ in range(10_000)]
    assert all(blocks)
    pin = blocks.pop()
    for block in blocks:
        libc.free(block)
    try:
        assert memory.can_trim()
        assert memory.trim() is True
    finally:
        libc.free(pin)


def test_trim_is_a_no_op_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.can_trim() is False
    assert memory.trim() is False
