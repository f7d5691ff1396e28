"""Masking by token class: one table per class, positive cases (masked) and negative cases (kept)."""

from __future__ import annotations

import pytest

from agent.ingest.masking import mask, mask_token


def _cases(kind: str, positive: list[str], negative: list[str]) -> list[tuple[str, str, bool]]:
    return [(kind, tok, True) for tok in positive] + [(kind, tok, False) for tok in negative]


TOKEN_TABLE = [
    *_cases(
        "NUM",  # hex ids are numbers in base 16: the same placeholder as their all-digit siblings
        ["0000001a", "7f3a9c", "deadbeef01", "0x1F", "0xdeadbeef", "a1b2c3d4e5f6a7b8", "00ff"],
        ["deadbeef", "cafe", "face", "added", "beef", "fade", "bad"],
    ),
    *_cases(
        "UUID",
        ["123e4567-e89b-12d3-a456-426614174000", "A987FBC9-4BED-3078-CF07-9141BA07C9F3"],
        ["123e4567-e89b-12d3-a456", "not-a-uuid-at-all-really"],
    ),
    *_cases(
        "ID",  # base64 / url-safe ids
        ["dGhpcyBpcyBhIHRlc3Q9PQ==", "abcdEFGH1234ijklMNOP", "x9_Kq-2LmZpQ7rT0vW", "Zm9vYmFyYmF6cXV4=="],
        ["ConnectionRefusedError", "NullPointerException", "application_name"],
    ),
    *_cases(
        "POD",  # Kubernetes pod and ReplicaSet names
        ["web-7d4b9c8f5-x2k9p", "api-server-5f6b8d7c9", "payments-worker-66bd8f9c4-mz7wq", "backup-28351740-kw9zp"],
        ["web-server", "kube-system", "front-end-proxy", "my-service"],
    ),
    *_cases("DUR", ["30s", "1.5ms", "250us", "3h", "2m30s", "15min", "100ns"], ["s", "ms", "seconds"]),
    *_cases("SIZE", ["250MB", "10KiB", "4GiB", "512k", "1.5GB", "64B"], ["MB", "KiB", "bytes"]),
    *_cases(
        "IP",
        ["10.0.0.26", "192.168.1.1", "10.0.0.0/8", "fe80::1ff:fe23:4567:890a", "2001:db8::1"],
        ["1.2.3", "version", "a:b"],
    ),
    *_cases(
        "ADDR",  # endpoints: address with a port
        ["10.0.0.26:5432", "proxy.cse.cuhk.edu.hk:5070", "db-1.internal:6379", "[::1]:8080"],
        ["host:", "key:value", "localhost", "user:10", "shard:4"],
    ),
    *_cases(
        "URL",
        ["http://10.0.0.26/api", "https://api.example.com/v1/items/42", "postgresql://db:5432/app"],
        ["http", "example.com"],
    ),
    *_cases("EMAIL", ["alice@example.com", "ops.team+alerts@corp.io"], ["@mention", "user@"]),
    *_cases(
        "PATH",  # paths with numeric parts
        ["/var/log/app-3.log", "/data/blk_1073741825/meta", "/tmp/upload/2024/01/f.bin"],
        ["/usr/bin/python", "/etc/hosts", "src/app/main.py"],
    ),
    *_cases("NUM", ["42", "-7", "3.14", "1,024", "1e-9", "99%"], ["forty", "pi"]),
]


@pytest.mark.parametrize(("kind", "token", "masked"), TOKEN_TABLE, ids=[f"{k}-{t}" for k, t, _ in TOKEN_TABLE])
def test_token_class(kind: str, token: str, masked: bool) -> None:
    out = mask_token(token)
    if masked:
        assert out == f"<{kind}>", (token, out)
    else:
        assert f"<{kind}>" not in out, (token, out)


SPAN_TABLE = [
    # timestamps in common log formats
    ("at 2024-05-01T10:00:00.123Z done", "at <TS> done"),
    ("2015-10-18 18:01:47,978 INFO start", "<TS> INFO start"),
    ("Dec 10 06:55:46 LabSZ sshd", "<TS> LabSZ sshd"),
    ("[Sun Dec 04 04:47:44 2005] [notice]", "[<TS>] [notice]"),
    ("10/Oct/2000:13:55:36 -0700 GET", "<TS> GET"),
    ("17/06/09 20:10:40 INFO", "<TS> INFO"),
    ("took until 12:30:01", "took until <TS>"),
    ("meeting on Monday in May", "meeting on Monday in May"),
    ("version 2024 of 10 items", "version <NUM> of <NUM> items"),
    ("estimated size 384.0 B, free 12 KB", "estimated size <SIZE>, free <SIZE>"),  # a number and its unit
    ("took 30 ms then <1 sec", "took <DUR> then <DUR>"),
    ("sent 403 bytes (403 bytes)", "sent <SIZE>"),  # one value in two units is one value
    # quoted values
    ('column "user_email" does not exist', 'column "<STR>" does not exist'),
    ("unknown key 'max_retries' in config", "unknown key '<STR>' in config"),
    ("value='abc' rejected", "value='<STR>' rejected"),
    ('process "/bin/sh -c pip install" failed', 'process "/bin/sh -c pip install" failed'),  # a phrase stays
    ("it's the user's fault", "it's the user's fault"),
    ('he said"no"', 'he said"no"'),
]


@pytest.mark.parametrize(("line", "expected"), SPAN_TABLE)
def test_span_class(line: str, expected: str) -> None:
    assert mask(line) == expected


MIXED_TABLE = [
    ("user42 logged in", "user<NUM> logged in"),
    ("req-a1b2c3 failed", "req-<NUM> failed"),  # digits and letters interleaved: one id, not a<NUM>b<NUM>
    ("blk_-1608999687919862906 missing", "<ID> missing"),
    ("REDACTED:token-1234 kept", "REDACTED:token-1234 kept"),
    ("deadbeef is a word in this sentence", "deadbeef is a word in this sentence"),
    ("request 0000001a to http://10.0.0.26/api timed out after 30s", "request <NUM> to <URL> timed out after <DUR>"),
]


@pytest.mark.parametrize(("line", "expected"), MIXED_TABLE)
def test_whole_lines(line: str, expected: str) -> None:
    assert mask(line) == expected


def test_an_8_hex_digit_request_id_has_one_shape_whatever_its_letters() -> None:
    shapes = {mask(f"request {i:08x} to http://10.0.0.{i % 200}/api timed out after 30s") for i in range(5000)}
    assert shapes == {"request <NUM> to <URL> timed out after <DUR>"}
