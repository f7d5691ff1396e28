"""Mask the variable parts of a message by token class, so one error has one shape.

Three passes over the first line of a message, each a pure function of the text:

1. spans: timestamps in common log formats (`<TS>`), a number and its unit (`<SIZE>`, `<DUR>`) and
   quoted values without spaces (`"<STR>"`);
2. tokens (runs without spaces or brackets) that are one value as a whole: UUIDs, IPs and endpoints,
   URLs, e-mail addresses, hex ids, Kubernetes pod / ReplicaSet names, durations and sizes with units,
   numbers, base64 / url-safe ids, paths with numeric parts;
3. what is left of a token with digits in it: each part between separators (`-_.:/#`) that holds a
   digit becomes `<NUM>` (digits, or letters and digits mixed), keeping a leading word: `user<NUM>`.

Hex ids and mixed letter/digit parts are `<NUM>` like plain numbers: a random id is sometimes all
digits (`00000012` next to `0000001a`), and one error must keep one shape.

Only tokens with a digit, an `@`, `://` or `=` padding can be variable, so prose costs one check a word:
`deadbeef` or `cafe` in a sentence stay words. A masked token never depends on what other messages said.
"""

from __future__ import annotations

import re

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_HMS = r"\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?"
_ZONE = r"(?:\s?(?:Z|UTC|GMT|[+-]\d{2}:?\d{2}))?"

_SPANS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), repl)
    for p, repl in (
        # 2024-05-01T10:00:00.123Z, 2015-10-18 18:01:47,978, 2024/05/01 10:00:00
        (rf"\b\d{{4}}[-/]\d{{2}}[-/]\d{{2}}(?:[T ]{_HMS}{_ZONE})?\b", "<TS>"),
        # Sun Dec 04 04:47:44 2005, Dec  4 04:47:44, Jun 14 15:16:01 (syslog)
        (rf"\b(?:{_DAY},?\s+)?{_MONTH}\s+\d{{1,2}},?\s+{_HMS}(?:\s+\d{{4}})?{_ZONE}", "<TS>"),
        # 10/Oct/2000:13:55:36 -0700 (common log format), 17/06/09 20:10:40 (Spark)
        (rf"\b\d{{1,2}}/{_MONTH}/\d{{4}}:{_HMS}(?:\s[+-]\d{{4}})?", "<TS>"),
        (rf"\b\d{{2}}/\d{{2}}/\d{{2,4}}[ ,:]{_HMS}", "<TS>"),
        (rf"\b{_HMS}\b", "<TS>"),
        (r"(?<![\w.:])\d{1,2}:\d{2}\b(?![:.]\d)", "<TS>"),  # 10:42, or a lifetime 00:01 (mm:ss)
        # A number and its unit as two words: 403 bytes, 12 KB, 30 ms.
        (r"(?<![\w.])\d+(?:\.\d+)? (?:B|bytes?|[KMGT]i?B|kB)\b", "<SIZE>"),
        (r"(?<![\w.])\d+(?:\.\d+)? (?:ms|us|ns|secs?|seconds?|mins?|minutes?|hours?)\b", "<DUR>"),
        # A quoted value: "..." or '...' without spaces, that opens after a space, `=`, `:` or `(` and closes
        # before one. A quoted phrase or command (`process "/bin/sh -c pip install ..."`) says which error it is.
        (r"""(?<![\w"'])"[^"\s]{1,200}"(?![\w"])""", '"<STR>"'),
        (r"""(?<=[\s=:(\[])'[^'\s]{1,200}'(?![\w'])|^'[^'\s]{1,200}'(?![\w'])""", "'<STR>'"),
    )
)

_TLDS = (
    "com|net|org|edu|gov|mil|int|info|biz|io|co|me|us|uk|de|fr|cn|jp|ru|br|in|au|nl|it|es|ca|ch|se|no|kr|tw|hk|"
    "mx|eu|cz|at|be|dk|fi|ie|il|nz|sg|za|ar|cl|tr|ua|vn|id|my|th|om|local|internal|lan|arpa|cloud|dev|app"
)
_HOST = rf"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+(?:{_TLDS})"
"""A DNS name that ends in a common top-level domain (so `app.py` or `os.path.join` are not hosts)."""
_HEX = r"[0-9a-fA-F]"
_POD = r"[bcdfghjklmnpqrstvwxz2456789]"
"""Kubernetes' alphabet for generated name suffixes (no vowels, no 0/1/3)."""

# A token that is one value as a whole. Order matters: the first that matches the whole token wins.
_WHOLE: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), name)
    for p, name in (
        (rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}", "UUID"),
        (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "EMAIL"),
        (r"[A-Za-z][\w+.-]*://\S+", "URL"),
        # An endpoint (address with a port) is one variable, whichever form the address takes.
        (r"(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[0-9a-fA-F:]+\]|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+):\d{1,5}", "ADDR"),
        (r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?:/\d{1,2})?", "IP"),
        (_HOST, "HOST"),
        (r"(?=[0-9a-fA-F:]*\d)(?=(?:[0-9a-fA-F]*:){2})[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}", "IP"),
        # Hex ids of any length (from 4) with both digits and letters: 0000001a, 7f3a9c, deadbeef01. A hex id is
        # a number (base 16), so it is `<NUM>` like its all-digit siblings: 00000012 and 0000001a are one shape.
        (r"0x[0-9a-fA-F]+", "NUM"),
        (rf"(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F]){_HEX}{{4,}}", "NUM"),
        # Kubernetes: <name>-<pod-template-hash>[-<5 chars>] (a ReplicaSet or its pod), <name>-<5 chars> (a Job's pod).
        (rf"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?-(?=(?:{_POD})*\d){_POD}{{6,10}}(?:-{_POD}{{5}})?", "POD"),
        (rf"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?-(?=(?:{_POD})*\d)(?=(?:{_POD})*[a-z]){_POD}{{5}}", "POD"),
        (r"[-+]?\d+(?:\.\d+)?(?:ns|us|µs|ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hrs?|hours?|d|days?)", "DUR"),
        (r"\d+(?:h\d+)?m\d+(?:\.\d+)?s|\d+h\d+m", "DUR"),
        (r"[-+]?\d+(?:\.\d+)?(?:[kKMGTP]i?B|[kKMGTP]|B|b|bytes?|kb|mb|gb)", "SIZE"),
        (r"[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?%?", "NUM"),
        # base64 / url-safe ids: long, with a digit or base64 padding / symbols.
        # (Not a path: a token that starts with `/` or has two of them.)
        (r"(?!/)(?![^/]*/[^/]*/)(?:(?=[A-Za-z0-9+/_-]*\d)[A-Za-z0-9+/_-]{16,}={0,2}|[A-Za-z0-9+/]{12,}={1,2})", "ID"),
        (r"(?:[\w.~-]*/)+[\w.~-]*", "PATH"),
    )
)
_TOKEN = re.compile(r"[^\s,;()\[\]{}<>\"'=]+")
_MAYBE_VARIABLE = re.compile(rf"[\d@]|://|==?$|\.(?:{_TLDS})$")
_PART = re.compile(r"[^-_.:/#]+")
_WORD_NUM = re.compile(r"([A-Za-z]+)\d+")
_MASKED = re.compile(r"<[A-Z]+>|<\*>")
_SKIP_PREFIXES = ("REDACTED:",)
"""Scrubber markers are already what they should be."""


def _mask_part(match: re.Match[str]) -> str:
    part = match.group()
    if not any(c.isdigit() for c in part):
        return part
    if part.isdigit():
        return "<NUM>"
    word = _WORD_NUM.fullmatch(part)
    if word is not None:
        return f"{word.group(1)}<NUM>"
    return "<NUM>"


def mask_token(tok: str) -> str:
    """One token, masked by its class (the token without trailing `.`/`:` decides; they are kept)."""
    if tok.isdigit():
        return "<NUM>"
    if _MAYBE_VARIABLE.search(tok) is None or tok.startswith(_SKIP_PREFIXES):
        return tok
    core = tok.rstrip(".:")
    tail = tok[len(core) :]
    for rx, name in _WHOLE:
        if rx.fullmatch(core):
            return f"<{name}>{tail}"
    return _PART.sub(_mask_part, tok)


# A run of values is one value: `<ID> <ID> <ID>` (a list of block ids), `<SIZE> (<SIZE>)` (one size in two units).
_BOUND = re.compile(r"[<>]=?(?=<[A-Z]+>)")
"""`<1 sec`, `>= 30 ms`: a bound on a value is the value."""
_EMPTY = re.compile(r" ?(?:\(\s*\)|\[\s*\]|\{\s*\})(?= |$)")
"""An empty bracket pair is an empty value: `connection from <IP> () at <TS>` is `connection from <IP> at <TS>`."""
_RUN = re.compile(r"<([A-Z]+)>(?:(?: |, ?)<[A-Z]+>| ?\(<[A-Z]+>\))+")


def mask(line: str) -> str:
    """Replace variable parts (ids, numbers, addresses, hosts, times, sizes, paths with digits) with `<KIND>`."""
    for rx, repl in _SPANS:
        line = rx.sub(repl, line)
    line = _BOUND.sub("", line)
    line = _TOKEN.sub(lambda m: mask_token(m.group()), line)
    line = _EMPTY.sub("", line)
    return _RUN.sub(lambda m: f"<{m.group(1)}>", line)


def is_masked(token: str) -> bool:
    """True for a token that masking produced (or that contains such a part)."""
    return _MASKED.search(token) is not None
