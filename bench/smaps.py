"""Where a process's resident memory is: `/proc/PID/smaps` grouped by what each mapping holds.

Groups (MB of RSS):
- `model_file`: the GGUF weights, mmap'd read-only by llama.cpp (file-backed; the kernel may drop them).
- `lib:<name>`: code and data of shared libraries, by library (xllamacpp, chromadb's rust bindings, ...).
- `heap`: the main thread's malloc heap (`[heap]`, brk), where most small Python objects live.
- `malloc_arenas`: glibc's per-thread arenas (64 MiB reservations: an rw part plus a `---p` tail).
- `anon_large`: other anonymous mappings of 1 MiB or more: big `malloc`s served by mmap (llama.cpp's KV cache,
  compute and prompt-cache buffers, numpy arrays, hnswlib's index, sqlite's page cache when large).
- `anon_small`: anonymous mappings under 1 MiB (thread stacks' touched pages, small mmaps).
- `other_files`: other file-backed mappings (sqlite files, Chroma's files, locale data).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")
_ARENA = 64 * 1024 * 1024
_LIB_NAMES = ("xllamacpp", "chromadb_rust_bindings", "onnxruntime", "numpy", "hnswlib", "tokenizers", "libpython")


@dataclass
class _Mapping:
    start: int
    end: int
    perms: str
    path: str
    rss_kb: int = 0

    @property
    def size(self) -> int:
        return self.end - self.start


def _read(pid: int) -> list[_Mapping]:
    maps: list[_Mapping] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        header = _HEADER.match(line)
        if header:
            start, end, perms, path = header.groups()
            maps.append(_Mapping(int(start, 16), int(end, 16), perms, path.strip()))
        elif line.startswith("Rss:") and maps:
            maps[-1].rss_kb = int(line.split()[1])
    return maps


def _lib(path: str) -> str:
    name = Path(path).name
    for known in _LIB_NAMES:
        if known in path:
            return f"lib:{known}"
    return "lib:other" if name else "lib:?"


def breakdown(pid: int) -> dict[str, float]:
    """MB of RSS per group (see the module docstring), largest first, plus `total`."""
    maps = _read(pid)
    groups: dict[str, int] = defaultdict(int)
    arena_starts = {
        m.start
        for i, m in enumerate(maps[:-1])
        if not m.path
        and m.perms.startswith("rw")
        and m.start % _ARENA == 0
        and maps[i + 1].start == m.end
        and maps[i + 1].perms.startswith("---")
        and maps[i + 1].end - m.start == _ARENA
    }
    for m in maps:
        if m.path.endswith(".gguf"):
            group = "model_file"
        elif ".so" in Path(m.path).name:
            group = _lib(m.path)
        elif m.path == "[heap]":
            group = "heap"
        elif m.path.startswith("["):
            group = "other_special"  # [stack], [vdso], [vvar]
        elif m.path:
            group = "other_files"
        elif m.start in arena_starts:
            group = "malloc_arenas"
        elif m.size >= 1024 * 1024:
            group = "anon_large"
        else:
            group = "anon_small"
        groups[group] += m.rss_kb
    out = {k: round(v / 1024, 1) for k, v in sorted(groups.items(), key=lambda kv: -kv[1]) if v >= 1024}
    out["total"] = round(sum(groups.values()) / 1024, 1)
    return out


def rollup(pid: int) -> dict[str, float]:
    """`/proc/PID/smaps_rollup` in MB: Rss, Pss, and anonymous vs file-backed."""
    wanted = {"Rss", "Pss", "Pss_Anon", "Pss_File", "Anonymous", "Shared_Clean", "Private_Clean"}
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in wanted:
            out[key] = round(int(rest.split()[0]) / 1024, 1)
    return out


def threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))
