"""Secret scrubbing: replace credentials and personal data in error events with ``[REDACTED:<kind>]``.

It runs on every ingested event before anything is stored, embedded or sent to a model, and in the SDK
before an event leaves the process, so clean text must be cheap. Every detector therefore starts with a
literal (``://``, ``eyJ``, ``ghp_`` ...) that ``re`` skips to with its fast prefix search; a pattern that starts
with a character class makes ``re`` try a full match at nearly every position, several times slower.
``key=value`` pairs are found by scanning the reversed, lower-cased text for ``=`` and ``:`` followed by a
reversed key word, card numbers by scanning a digit mask of the text for ``0000``.

Rules worth knowing (the tests pin them down):

- ``key=value``: the key must *end* with a sensitive word (``db_password``, ``X-Api-Key``, ``GITHUB_TOKEN``;
  not ``tokenizer`` or ``token_count``). The value is kept when it cannot be a secret: booleans and null,
  integers of at most three digits, status words (``missing``, ``expired``), empty values, masks (``***``),
  references (``${DB_PASSWORD}``, ``%s``, ``<password>``), paths, type names (``password: str``), code
  (``token = get_token(...)``), a bare word after a quoted key (``"db-secret" : secret``) and, in prose
  (``Invalid token: abc``: a bare key mid-line, then ``:``), values that do not look random (no digit and
  shorter than 20). ``--password <value>`` is a flag; ``-p<value>`` is not (``-p`` is a port or a profile
  for most tools). A ``Cookie:`` header is redacted to the end of its line.
- Card numbers: 13-16 plain digits, or 13-19 grouped 4-4-4-4(-3) / 4-6-5 / 4-6-4 by one kind of separator,
  with an issuer prefix (2221-2720, 3, 4, 5, 6) of a matching length and a valid Luhn checksum, not glued to a
  word, a minus sign or a decimal point.
- ``data()`` replaces containers nested deeper than 32 levels (or cyclic) with ``[REDACTED:too_deep]``,
  so that a hostile payload or a self-referencing object from the SDK cannot exhaust the stack.
- Placeholders never match again, and a text with a redaction gets another round until nothing changes, so
  ``text(text(s)) == text(s)``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, Final

KINDS: Final[tuple[str, ...]] = (
    "private_key", "url_password", "jwt", "api_token", "aws_key", "aws_secret", "bearer", "credit_card",
    "key_value", "email", "by_key", "too_deep",
)  # fmt: skip
"""Every placeholder kind this module emits; ``by_key`` and ``too_deep`` come only from :meth:`Scrubber.data`."""

_MARK: Final = "[REDACTED:"
_MAX_ROUNDS: Final = 4  # one round, plus one that confirms; more only when redactions uncover others
_MAX_DEPTH: Final = 32
_Span = tuple[int, int, str]


def _ph(kind: str) -> str:
    return f"{_MARK}{kind}]"


# Patterns on the original text ----------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
    r".*?(?:-----END[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----|\Z)",  # truncated: redact to the end
    re.DOTALL,
)
# scheme://user:password@host: the user may be an e-mail address, the password runs to the last "@".
_URL_PASSWORD = re.compile(r"://([^\s/?#:\"'<>\[\]]*):(?!\[REDACTED:)([^\s/?#\"'<>]+)@")
# The look-behind after "eyJ" stops the search from restarting inside one long word (quadratic otherwise).
_JWT = re.compile(
    r"eyJ(?<![\w-]eyJ)[\w-]{8,}\.[\w-]{2,}\.[\w-]*(?:\.[\w-]+\.[\w-]+)?", re.ASCII
)  # JWS, or JWE (5 parts)
# Most token prefixes end in "_" or "-", so one scan per separator finds them; a look-behind checks the prefix
# and its group tells where the token starts. A scan per prefix would cost ~0.4 us each on a short message.
_TOKENS: Final = (
    re.compile(
        r"_(?<=[pousrtkfm]_)"  # cheap first test: most "_" in snake_case code fail here
        r"(?:(?<=(gh[pousr])_)[A-Za-z0-9]{30,}"
        r"|(?<=(github_pat)_)\w{40,}"
        r"|(?<=([spr]k)_)(?:live|test)_[A-Za-z0-9]{16,}"
        r"|(?<=(hf)_)[A-Za-z0-9]{30,}"
        r"|(?<=(npm)_)[A-Za-z0-9]{36})",
        re.ASCII,
    ),
    re.compile(
        r"-(?:(?<=(glpat)-)[\w-]{20,}"
        r"|(?<=(xox[abprse])-)[A-Za-z0-9-]{10,}"
        r"|(?<=(sk)-)(?:proj-|svcacct-|admin-|ant-[a-z]{3,5}\d\d-)?[\w-]{20,})",
        re.ASCII,
    ),
    re.compile(r"A(?:Iza[\w-]{35}|(?:KIA|SIA|ROA|IDA|GPA|IPA|NPA|NVA|PKA|BIA|CCA)[A-Z0-9]{16})"),  # AKIA...: AWS
    re.compile(r"SG\.[\w-]{16,}\.[\w-]{16,}", re.ASCII),
)
_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.([A-Za-z]{2,24})(?![A-Za-z0-9-])")
# "icon@2x.png" is a file and "rabbit@rabbitmq-0.rabbitmq.svc.cluster.local" an Erlang node, not mailboxes.
_NOT_MAIL_TLDS: Final = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "js", "ts", "css", "py", "java", "rb", "go", "local", "internal",
     "localdomain", "lan", "svc"}
)  # fmt: skip
_ALNUM: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_B64URL: Final = _ALNUM | {"_", "-"}

# Card numbers are searched in a mask of the text: ASCII digits -> "0", space and "-" -> "-", rest -> ".".
_CARD_BYTES: Final = bytes(
    ord("0") if 48 <= i <= 57 else ord("-") if i in (32, 45) else ord(".") for i in range(256)
)  # fmt: skip
_CARD_STR: Final = str.maketrans({chr(i): chr(_CARD_BYTES[i]) for i in range(128)})
_CARD_RUN = re.compile(r"0000(?:-?0){9,15}")
_CARD_GROUPINGS: Final = frozenset({(4, 6, 5), (4, 6, 4)})

# Patterns on the lower-cased text -------------------------------------------------------------------------

_TEXT_KEY_WORDS: Final = (
    "password", "passwd", "passphrase", "pwd", "secret", "secrets", "token", "auth", "authorization",
    "credential", "credentials", "cookie", "jwt", "session", "sessid", "sessionid", "session_id", "session-id",
    "sessionkey", "session_key", "apikey", "api_key", "api-key", "accesskey", "access_key", "access-key",
    "secretkey", "secret_key", "secret-key", "privatekey", "private_key", "private-key",
)  # fmt: skip
_BEARER = re.compile(r"b(?:earer|asic)[ \t]+(?!\[redacted:)([a-z0-9._~+/-]+=*)")
_AUTH_HEADER_BEFORE = re.compile(r"authorization[\"']?[ \t]*[:=][ \t]*[\"']?\Z")
_VALUE = re.compile(
    r"(?![=:])>?[ \t]*(?:"  # not "==", "::" or ":="; "=>" is a separator too
    r"\\\"((?:[^\"\\\n]|\\[^\"\n])*)\\\""  # \"...\": JSON inside a JSON string
    r"|\"((?:[^\"\\\n]|\\.)*)\""
    r"|'([^'\n]*)'"
    r"|((?:\$\{[^}\s]*\}|[^\s\"'`,;&<>()\[\]{}\\])+))"  # bare; may hold ${VAR}
)
_NEXT_PAIR = re.compile(r"[a-z_][\w.-]*[=:]")
_COOKIE_HEADER = re.compile(r"cookie[ \t]*:[ \t]*+(?!\[redacted:)([^\r\n\"'\\]+)")
_AWS_SECRET_KEY = re.compile(r"(?:aws[_-]?)?secret[_-]?access[_-]?key|aws[_-]?secret(?:[_-]?key)?")
_AWS_SECRET_VALUE = re.compile(r"[A-Za-z0-9/+=]{40}")
_KEY_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_STRUCTURE_BEFORE_KEY: Final = frozenset("\n\r{[(,;&?|\"'`")
_SCHEMES: Final = frozenset({"bearer", "basic", "digest", "negotiate", "token"})
_SCHEME_VALUE = re.compile(r"[ \t]*[\"']?(bearer|basic|token|negotiate|digest)[ \t]+([^\s\"',;]+)")
_BENIGN_VALUES: Final = frozenset(
    {"true", "false", "null", "none", "nil", "yes", "no", "on", "off", "undefined", "n/a", "na", "empty",
     "required", "optional", "str", "string", "bytes", "int", "bool", "any", "object", "secretstr", "text",
     "[filtered]", "[redacted]", "ok", "set", "unset", "missing", "invalid", "expired", "valid", "present",
     "absent", "hidden", "masked", "redacted", "filtered", "enabled", "disabled"}
)  # fmt: skip
_PLACEHOLDER_VALUE = re.compile(r"\$\{[^}]*\}|\$[a-z_]\w*|%s|%\(\w+\)s|\{\w*\}|<[^>]*>|\*+|x{3,}|-?\d{1,3}")
_CODE_VALUE_PREFIXES: Final = ("self.", "this.", "cls.", "os.environ", "os.getenv", "process.env")
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# Dict keys are compared with separators removed, by suffix: "db_password", "X-Api-Key", "csrftoken".
_DATA_KEY_SUFFIXES: Final = (
    "password", "passwd", "passphrase", "pwd", "secret", "secrets", "token", "apikey", "accesskey", "secretkey",
    "privatekey", "auth", "authorization", "cookie", "cookies", "session", "sessionid", "sessid", "sessionkey",
    "credential", "credentials", "dsn", "jwt",
)  # fmt: skip
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _trie(words: Iterable[str]) -> str:
    """An alternation shaped as a prefix trie, so ``re`` tests one branch per character, not one per word."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def walk(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + walk(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body  # greedy "?": the longer word wins

    return walk(root)


@functools.lru_cache(maxsize=16)
def _key_scanners(extra: frozenset[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Scanners for ``key=value`` / ``key: value`` (on reversed text, ``:`` made ``=``) and ``--key value``."""
    words = {*_TEXT_KEY_WORDS, *extra}
    # Reversed, `key"  =` reads `=  "key`: the separator is the literal that the search skips to.
    pair = re.compile(r"=[ \t]*(?:[\"']\\?)?" + _trie(w[::-1] for w in words))  # no group: cheaper attempts
    flag = re.compile(r"--(?:[a-z0-9]+[-_])*" + _trie(words) + r"[ \t]+(?!-)")
    return pair, flag


def _lower(s: str) -> str:
    low = s.lower()
    # str.lower() turns "İ" into two characters; lower ASCII only then, so offsets stay aligned with `s`.
    return low if len(low) == len(s) else s.translate(_ASCII_LOWER)


def _splice(s: str, spans: list[_Span]) -> str:
    """Replace ``(start, end, text)`` spans; of overlapping spans the first-starting, then longest, wins."""
    if not spans:
        return s
    out: list[str] = []
    pos = 0
    for start, end, repl in sorted(spans, key=lambda span: (span[0], -span[1])):
        if start >= pos:
            out += (s[pos:start], repl)
            pos = end
    out.append(s[pos:])
    return "".join(out)


def _looks_random(v: str) -> bool:
    """True for opaque tokens (``hunter2``, ``a8F2kQzWx``), false for words (``expired``, ``invalid``)."""
    if len(v) < 6:
        return False
    if len(v) >= 20 or (any(c.isdigit() for c in v) and any(c.isalpha() for c in v)):
        return True
    inner = v[1:]
    return len(v) >= 8 and any(c.isupper() for c in inner) and any(c.islower() for c in inner)


def _glued(s: str, start: int, end: int, before: frozenset[str] = _B64URL) -> bool:
    """True when a match is part of a longer word, e.g. ``xeyJ...`` or ``AKIA...`` inside an identifier."""
    return (start > 0 and s[start - 1] in before) or (end < len(s) and s[end] in _ALNUM)


# Detectors: each returns `s` itself when it finds nothing. They loop on `search` rather than `finditer`,
# whose iterator costs about a microsecond per call even on text without a match.


def _private_keys(s: str) -> str:
    return _PRIVATE_KEY.sub(_ph("private_key"), s) if "-----BEGIN" in s else s


def _url_passwords(s: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"://{m[1]}:{_ph('url_password')}@", s) if "://" in s else s


def _jwts(s: str) -> str:
    spans: list[_Span] = []
    m = _JWT.search(s)
    while m:
        if not _glued(s, m.start(), m.end()):
            spans.append((m.start(), m.end(), _ph("jwt")))
        m = _JWT.search(s, m.end())
    return _splice(s, spans)


def _api_tokens(s: str) -> str:
    spans: list[_Span] = []
    for pattern in _TOKENS:
        m = pattern.search(s)
        while m:
            start, end = m.start(m.lastindex or 0), m.end()
            token = s[start:end]
            # "sk-learn-pipeline-step" is a name; real "sk-" keys are random.
            if not _glued(s, start, end, _ALNUM) and (not token.startswith("sk-") or _mixed(token[3:])):
                kind = "aws_key" if token[0] == "A" and not token.startswith("AIza") else "api_token"
                spans.append((start, end, _ph(kind)))
            m = pattern.search(s, end)
    return _splice(s, spans)


def _mixed(body: str) -> bool:
    return any(c.isupper() for c in body) and any(c.islower() for c in body) and any(c.isdigit() for c in body)


def _cards(s: str) -> str:
    view = s.encode("ascii").translate(_CARD_BYTES).decode("ascii") if s.isascii() else s.translate(_CARD_STR)
    spans: list[_Span] = []
    n = len(s)
    m = _CARD_RUN.search(view)
    while m:
        a, b = m.span()
        m = _CARD_RUN.search(view, b)
        # Only whole runs: not a slice of a longer number, an identifier, a negative number or a decimal.
        if a > 0 and (view[a - 1] == "0" or (view[a - 1] == "-" and a > 1 and view[a - 2] == "0")):
            continue
        if b < n and (view[b] == "0" or (view[b] == "-" and b + 1 < n and view[b + 1] == "0")):
            continue
        if a > 0 and (s[a - 1].isalpha() or s[a - 1] in "_.+-"):
            continue
        if b < n and (s[b].isalpha() or s[b] == "_" or (s[b] == "." and b + 1 < n and s[b + 1].isdigit())):
            continue
        if _is_card(s[a:b]):
            spans.append((a, b, _ph("credit_card")))
    return _splice(s, spans)


def _is_card(run: str) -> bool:
    seps = {c for c in run if not c.isdigit()}
    if len(seps) > 1:
        return False
    groups = run.split(seps.pop()) if seps else [run]
    lens = tuple(map(len, groups))
    if len(lens) == 1 and lens[0] > 16:
        return False  # 17-19 plain digits are far more often a 64-bit id than one of the rare long cards
    fours = len(lens) >= 4 and all(n == 4 for n in lens[:-1]) and lens[-1] <= 4
    if len(lens) > 1 and not fours and lens not in _CARD_GROUPINGS:
        return False
    digits = "".join(groups)
    n, first = len(digits), digits[0]
    issuer_ok = (
        (first == "4" and n in (13, 16, 19))
        or (first in "56" and n >= 16)
        or (first == "3" and n >= 14)
        or (first == "2" and n == 16 and 2221 <= int(digits[:4]) <= 2720)
    )
    return issuer_ok and _luhn(digits)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _bearer(s: str, low: str) -> str:
    spans: list[_Span] = []
    m = _BEARER.search(low)
    while m:
        start, (tok_start, tok_end) = m.start(), m.span(1)
        m = _BEARER.search(low, tok_end)
        if start > 0 and low[start - 1].isalnum():
            continue
        while tok_end > tok_start and low[tok_end - 1] == ".":  # a full stop ends the sentence, not the token
            tok_end -= 1
        in_header = _AUTH_HEADER_BEFORE.search(low, max(0, start - 24), start) is not None
        if tok_end > tok_start and (in_header or _looks_random(s[tok_start:tok_end])):
            spans.append((tok_start, tok_end, _ph("bearer")))
    return _splice(s, spans)


def _emails(s: str) -> str:
    if "@" not in s:
        return s
    spans: list[_Span] = []
    m = _EMAIL_DOMAIN.search(s)
    while m:
        at = i = m.start()
        while i > 0 and at - i <= 64 and (s[i - 1].isalnum() or s[i - 1] in "._%+-"):  # "jörg@" too
            i -= 1
        while i < at and s[i] == ".":
            i += 1
        # "git@github.com:org/repo" is an SSH remote, not a mailbox.
        if i < at and at - i <= 64 and m[1].lower() not in _NOT_MAIL_TLDS and s[i:at] != "git":
            spans.append((i, m.end(), _ph("email")))
        m = _EMAIL_DOMAIN.search(s, m.end())
    return _splice(s, spans)


def _in_prose(low: str, key_start: int) -> bool:
    """True for ``Invalid token: x`` and ``Exception: session: x``: a bare key after a space, mid-line.

    A key at the start of a line or after ``{ [ ( , ; & ? |`` or a quote is structured (YAML, logfmt, a
    dict). Anything else before the space (a word, ``:``, or a placeholder that replaced a word, so that a
    second pass agrees with the first) reads as a sentence.
    """
    i = key_start - 1
    if i < 0 or low[i] not in " \t":
        return False
    while i >= 0 and low[i] in " \t":
        i -= 1
    return i >= 0 and low[i] not in _STRUCTURE_BEFORE_KEY


def _keep_value(value: str, *, quoted: bool, after: str, prose: bool, key_quoted: bool = False) -> bool:
    """True when the value of a sensitive key cannot be a secret (see the module docstring)."""
    v = value.strip()
    lv = v.lower()
    if not v or lv.startswith(_MARK.lower()) or lv in _BENIGN_VALUES or _PLACEHOLDER_VALUE.fullmatch(lv):
        return True
    if quoted:
        return False
    if (after and after in "([") or lv.startswith(_CODE_VALUE_PREFIXES):
        return True  # code in a traceback: `token = get_token(...)`, `password = request.form["password"]`
    if lv.startswith("/") and lv.count("/") > 1:
        return True  # a path such as PWD=/srv/app or password_file=/run/secrets/db
    if lv in _SCHEMES and after in (" ", "\t"):
        return True  # `Authorization: Bearer [REDACTED:bearer]`: the bearer detector owns the token
    if key_quoted and v.isalpha():
        return True  # `"key": word`: in JSON or a dict repr a bare word is a literal, not a string value
    return prose and not _looks_random(v)


def _value_span(s: str, low: str, value_pos: int, limit: int, *, prose: bool, key_quoted: bool = False) -> _Span | None:
    m = _VALUE.match(low, value_pos, limit)
    if m is None:
        return None
    group = m.lastindex or 4
    start, end = m.span(group)
    quoted = group < 4
    after = "" if quoted else s[end : end + 1]
    if _keep_value(s[start:end], quoted=quoted, after=after, prose=prose, key_quoted=key_quoted):
        return None
    if not quoted and start > value_pos and _NEXT_PAIR.match(low, start, end):
        return None  # `password= user=bob`: an empty value, then the next pair
    return start, end, _ph("key_value")


def _key_value_span(s: str, low: str, word_start: int, value_pos: int, limit: int, *, key_quoted: bool) -> _Span | None:
    """The span to redact for the key word at ``word_start`` whose separator ends just before ``value_pos``.

    The value ends by ``limit``, where the next key starts: without it ``password=password=...`` would scan
    to the end of the text once per key.
    """
    key_start = word_start
    while key_start > 0 and word_start - key_start < 64 and low[key_start - 1] in _KEY_CHARS:
        key_start -= 1
    sep = low[value_pos - 1]
    key = low[key_start:value_pos].rstrip(" \t:=\"'\\")
    scheme = _SCHEME_VALUE.match(low, value_pos) if key.endswith("authorization") else None
    if scheme:  # `Authorization: Token abc`: keep the scheme, redact the credential as the bearer detector does
        done = scheme[1] == "digest" or scheme[2].startswith(_MARK.lower())
        return None if done else (scheme.start(2), scheme.end(2), _ph("bearer"))
    prose = sep == ":" and key_start == word_start and not key_quoted and _in_prose(low, word_start)
    span = _value_span(s, low, value_pos, limit, prose=prose, key_quoted=key_quoted)
    if span is None:
        return None
    if _AWS_SECRET_KEY.fullmatch(key) and _AWS_SECRET_VALUE.fullmatch(s, span[0], span[1]):
        return span[0], span[1], _ph("aws_secret")
    return span


def _cookie_headers(s: str, low: str) -> list[_Span]:
    """``Cookie: a=1; sid=2``: every cookie on the line is a credential, not only those with telling names."""
    spans: list[_Span] = []
    m = _COOKIE_HEADER.search(low)
    while m:
        start, end = m.span(1)
        value = s[start:end].rstrip()
        if value.lower() not in _BENIGN_VALUES:
            spans.append((start, start + len(value), _ph("key_value")))
        m = _COOKIE_HEADER.search(low, m.end())
    return spans


class Scrubber:
    """Replaces secrets in text and in JSON-like data with ``[REDACTED:<kind>]``.

    Args:
        emails: also redact e-mail addresses (personal data rather than credentials).
        extra_keys: more key names to treat as sensitive, e.g. ``("ssn", "iban")``; matched like the
            built-in ones (as the end of a key, case-insensitive) in ``key=value`` text and in dict keys.
    """

    def __init__(self, *, emails: bool = True, extra_keys: Iterable[str] = ()) -> None:
        self._emails = emails
        extra = frozenset(k.lower() for k in extra_keys if k.strip())
        self._data_suffixes = (*_DATA_KEY_SUFFIXES, *sorted({_NON_ALNUM.sub("", k) for k in extra} - {""}))
        self._pair, self._flag = _key_scanners(extra)
        self._key_cache: dict[str, bool] = {}

    def text(self, s: str) -> str:
        """Return ``s`` with every secret replaced by ``[REDACTED:<kind>]`` (``s`` itself if there is none)."""
        # Detectors look at their neighbours (is this token glued to a word? is this key mid-sentence?), and a
        # redaction changes the neighbours of what is left; another round after a change makes sure that the
        # output is a fixed point, so that text(text(s)) == text(s). Clean text costs one round.
        out = s
        for _ in range(_MAX_ROUNDS):
            new = self._round(out)
            if new == out:
                break
            out = new
        return s if out == s else out

    def _round(self, s: str) -> str:
        if not s:
            return s
        out = _cards(_api_tokens(_jwts(_url_passwords(_private_keys(s)))))
        low = _lower(out)
        new = _bearer(out, low)
        if new is not out:
            out, low = new, _lower(new)
        if self._emails:  # before key=value, whose prose rule looks at the word before a key
            new = _emails(out)
            if new is not out:
                out, low = new, _lower(new)
        return self._key_values(out, low)

    def data(self, value: Any) -> Any:
        """Scrub a JSON-like value recursively into a new value; the input is never mutated.

        Values under sensitive dict keys become ``"[REDACTED:by_key]"`` whatever their type, other strings go
        through :meth:`text`, and dict keys and non-string scalars are kept as they are.
        """
        return self._data(value, 0)

    def contains_secret(self, s: str) -> bool:
        """True when :meth:`text` would change ``s``."""
        return self.text(s) != s

    def _data(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if not isinstance(value, dict | list | tuple):
            return value
        if depth >= _MAX_DEPTH:
            return _ph("too_deep")
        depth += 1
        if isinstance(value, dict):
            return {k: _ph("by_key") if self._sensitive_key(k) else self._data(v, depth) for k, v in value.items()}
        items = [self._data(v, depth) for v in value]
        if isinstance(value, list):
            return items
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)  # keep namedtuples

    def _sensitive_key(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        hit = self._key_cache.get(key)
        if hit is None:
            hit = _NON_ALNUM.sub("", key.lower()).endswith(self._data_suffixes)
            if len(self._key_cache) >= 4096:  # keys repeat across events; bound the memory anyway
                self._key_cache.clear()
            self._key_cache[key] = hit
        return hit

    def _key_values(self, s: str, low: str) -> str:
        spans = _cookie_headers(s, low)
        n = len(low)
        if "=" in low or ":" in low:
            # One scan finds both separators; `low` still tells them apart.
            rev = low[::-1].replace(":", "=")
            limit = n  # keys come right to left: a value ends where the key after it starts
            m = self._pair.search(rev)
            while m:
                quoted = '"' in m[0] or "'" in m[0]
                span = _key_value_span(s, low, n - m.end(), n - m.start(), limit, key_quoted=quoted)
                if span:
                    spans.append(span)
                limit = n - m.end()
                m = self._pair.search(rev, m.end())
        if "--" in low:
            m = self._flag.search(low)
            while m:
                span = _value_span(s, low, m.end(), n, prose=False)
                if span:
                    spans.append(span)
                m = self._flag.search(low, m.end())
        return _splice(s, spans)
