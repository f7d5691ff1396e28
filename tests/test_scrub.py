"""Tests for agent.ingest.scrub: tables of text that must be redacted exactly, text that must stay."""

from __future__ import annotations

import copy
import random
import re
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

from agent.ingest.scrub import KINDS, Scrubber

EVALDATA = Path(__file__).resolve().parents[2] / "shared" / "evaldata"
PLACEHOLDER = re.compile(r"\[REDACTED:(\w+)\]")

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GHP = "ghp_" + "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2z4A"


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    return Scrubber()


def r(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# (input, expected output). Every kind appears several times, in several forms.
REDACT: list[tuple[str, str]] = [
    # aws_key
    ("boto: AKIAIOSFODNN7EXAMPLE in config", f"boto: {r('aws_key')} in config"),
    ("creds ASIAY34FZKBOKMUTVV7A expired", f"creds {r('aws_key')} expired"),
    (
        "GET /b?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/s3/aws4_request",
        f"GET /b?X-Amz-Credential={r('aws_key')}/20240101/us-east-1/s3/aws4_request",
    ),
    # aws_secret
    (f"aws_secret_access_key = {AWS_SECRET}", f"aws_secret_access_key = {r('aws_secret')}"),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET} aws s3 ls", f"AWS_SECRET_ACCESS_KEY={r('aws_secret')} aws s3 ls"),
    (f'{{"SecretAccessKey": "{AWS_SECRET}"}}', f'{{"SecretAccessKey": "{r("aws_secret")}"}}'),
    (f"DJANGO_SECRET_KEY={AWS_SECRET}", f"DJANGO_SECRET_KEY={r('key_value')}"),  # 40 characters, but not AWS
    # bearer
    ("Authorization: Bearer abc", f"Authorization: Bearer {r('bearer')}"),
    ("curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='", f"curl -H 'Authorization: Basic {r('bearer')}'"),
    ("retrying with Bearer abcDEF123456xyz after 401", f"retrying with Bearer {r('bearer')} after 401"),
    ("Authorization: Token abc123", f"Authorization: Token {r('bearer')}"),
    ("{'Authorization': 'Bearer abc.def'}", f"{{'Authorization': 'Bearer {r('bearer')}'}}"),
    (f"Authorization: Bearer {JWT}", f"Authorization: Bearer {r('jwt')}"),
    # api_token
    (f"token {GHP} leaked", f"token {r('api_token')} leaked"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP ok", f"{r('api_token')} ok"),
    ("glpat-xY9zAbCdEfGhIjKlMnOp rejected", f"{r('api_token')} rejected"),
    ("slack xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp", f"slack {r('api_token')}"),
    ("openai key sk-proj-AbCdEf0123456789_ghIJkl-MNopQRst", f"openai key {r('api_token')}"),
    ("OPENAI_API_KEY=sk-" + "Ab1" * 16, f"OPENAI_API_KEY={r('api_token')}"),
    ("stripe.api_key = 'sk_live_51H8abcdEFGHijklMNOP'", f"stripe.api_key = '{r('api_token')}'"),
    ("rk_live_AbCdEf0123456789xyz, pk_test_AbCdEf0123456789xyz", f"{r('api_token')}, {r('api_token')}"),
    ("maps AIzaSyA1234567890abcdefghijklmnopqrstuv!", f"maps {r('api_token')}!"),
    ("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", r("api_token")),
    ("HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", f"HF_TOKEN={r('api_token')}"),
    (
        "//registry.npmjs.org/:_authToken=npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        f"//registry.npmjs.org/:_authToken={r('api_token')}",
    ),
    # url_password
    ("postgres://app:s3cr3t@db.internal:5432/app", f"postgres://app:{r('url_password')}@db.internal:5432/app"),
    ("redis://:hunter2@localhost:6379/0", f"redis://:{r('url_password')}@localhost:6379/0"),
    ("amqp://guest:gu3st@rabbit:5672//", f"amqp://guest:{r('url_password')}@rabbit:5672//"),
    (
        "mongodb+srv://admin:p%40ss:w0rd@cluster0.mongodb.net/db?retryWrites=true",
        f"mongodb+srv://admin:{r('url_password')}@cluster0.mongodb.net/db?retryWrites=true",
    ),
    ("clone https://oauth2:tok3n@gitlab.com/g/p.git", f"clone https://oauth2:{r('url_password')}@gitlab.com/g/p.git"),
    (
        "smtp://ops@example.com:pw123@smtp.example.com",
        f"smtp://{r('email')}:{r('url_password')}@smtp.example.com",
    ),
    # key_value
    ("password=hunter2 user=bob", f"password={r('key_value')} user=bob"),
    ("login failed, password: hunter2", f"login failed, password: {r('key_value')}"),
    ("secret: s3cr3t!", f"secret: {r('key_value')}"),
    ("DB_PASSWORD: changeme", f"DB_PASSWORD: {r('key_value')}"),
    (
        'config {"password": "correct horse", "user": "bob"}',
        f'config {{"password": "{r("key_value")}", "user": "bob"}}',
    ),
    ("kwargs={'api_key': 'abc', 'timeout': 3}", f"kwargs={{'api_key': '{r('key_value')}', 'timeout': 3}}"),
    ('body="{\\"token\\": \\"t0k\\", \\"id\\": 1}"', f'body="{{\\"token\\": \\"{r("key_value")}\\", \\"id\\": 1}}"'),
    ("GET /cb?token=abc123&x=1", f"GET /cb?token={r('key_value')}&x=1"),
    ("GET /cb?x=1&access_token=abc.def-ghi", f"GET /cb?x=1&access_token={r('key_value')}"),
    ("X-Api-Key: abcdef", f"X-Api-Key: {r('key_value')}"),
    ("Server=db;Uid=sa;Pwd=Sup3r!;Encrypt=true", f"Server=db;Uid=sa;Pwd={r('key_value')};Encrypt=true"),
    ("$ app --password hunter2 --db-token=abc", f"$ app --password {r('key_value')} --db-token={r('key_value')}"),
    ("client_secret => 'x9y8z7'", f"client_secret => '{r('key_value')}'"),
    ("Cookie: sessionid=abc; csrftoken=xyz\nHost: x", f"Cookie: {r('key_value')}\nHost: x"),
    ("Invalid token: abc123def", f"Invalid token: {r('key_value')}"),
    ("password = 123456", f"password = {r('key_value')}"),
    ('{"password": 123456, "token": null}', f'{{"password": {r("key_value")}, "token": null}}'),
    # private_key
    (
        "key=-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nnext line",
        f"key={r('private_key')}\nnext line",
    ),
    ("loaded -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", f"loaded {r('private_key')}"),
    (
        '{"pk": "-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIE6T\\n-----END ENCRYPTED PRIVATE KEY-----\\n", "n": 1}',
        f'{{"pk": "{r("private_key")}\\n", "n": 1}}',
    ),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----", r("private_key")),
    # jwt
    (f"session {JWT} rejected", f"session {r('jwt')} rejected"),
    (f"GET /cb?id_token={JWT}&state=1", f"GET /cb?id_token={r('jwt')}&state=1"),
    (f'{{"jwt": "{JWT}"}}', f'{{"jwt": "{r("jwt")}"}}'),
    # credit_card
    ("charge 4111111111111111 declined", f"charge {r('credit_card')} declined"),
    ("card 4111 1111 1111 1111 exp 12/29", f"card {r('credit_card')} exp 12/29"),
    ("card=5555-5555-5555-4444;", f"card={r('credit_card')};"),
    ("amex 3782 822463 10005.", f"amex {r('credit_card')}."),
    ("discover 6011111111111117, visa 4222222222222", f"discover {r('credit_card')}, visa {r('credit_card')}"),
    ("mastercard 2223003122003222 jcb 3530111333300000", f"mastercard {r('credit_card')} jcb {r('credit_card')}"),
    # email
    ("notify bob.smith+alerts@example.co.uk failed", f"notify {r('email')} failed"),
    ("User(email='jörg@example.com')", f"User(email='{r('email')}')"),
    # webhook
    (
        "POST https://hooks.slack.com/services/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 -> 404",
        f"POST https://hooks.slack.com/services/{r('webhook')} -> 404",
    ),
    # high_entropy
    ("client_secret 8f3e9a7b6c5d4e3f2a1b0c9d8e7f6a5b invalid", f"client_secret {r('high_entropy')} invalid"),
]
# Ordinary error text that must come back unchanged.
KEEP: list[str] = [
    "request_id=4f1c2d7e-9b1a-4c55-a0c2-7d1e6b9f3a10 failed",  # UUID
    "HEAD is now at 9fceb02d0ae598e95dc970b74767f19372d61af8",  # git SHA
    "Segmentation fault at 0x7ffee4b2c8a0 (pc 0x000055d1c0a3e2f1)",  # hex addresses
    "2024-05-01T12:00:03.123456+00:00 took 1532ms",  # timestamps
    "connect to 10.0.3.17:5432 and [::1]:6379 refused",  # IPs, ports
    'File "/srv/app/handlers/orders.py", line 88, in create_order',  # file paths
    'File "app/views.py", line 42, in password_reset_view',  # a function name in a frame
    "\tat com.example.auth.TokenService.validateToken(TokenService.java:88)",
    "loading tokenizer=bert-base-uncased with token_count=5 max_tokens=100",
    "charge 4111111111111112 declined",  # fails Luhn
    "epoch 1700000000000 and id 4616189619927568385",  # a timestamp; a plain 19-digit id
    "blk_-4616189619927568385 and offset -4111111111111111",  # HDFS block id, a negative number
    "ratio 0.4111111111111111 converged",  # a float
    "call +1 415 555 0100 or +44 20 7946 0958",  # phone numbers
    "java.lang.Object@6d06d69c icon@2x.png lodash@4.17.21",
    "node rabbit@rabbitmq-0.rabbitmq-headless.rabbitmq.svc.cluster.local down",
    "git@github.com: Permission denied (publickey).",
    'MountVolume.SetUp failed for volume "db-secret" : secret "db-credentials" not found',
    "password: missing, token: expired, auth: disabled, cookie: none",
    "Invalid token: expired",
    "Caused by: java.lang.IllegalStateException: session: closed",
    "Invalid credentials: user=bob",
    "Bearer token missing; basic authentication failed",
    "    def login(self, password: str, token: Optional[str] = None) -> bool:",
    "    token = get_token(user)",
    "    user.password = request.POST['password']",
    "KeyError: 'password'",
    "auth=false password= token=null secret=0",
    "password=${DB_PASSWORD} token=%s secret=<hidden> api_key=*** pwd=$PGPASSWORD",
    "secret_name=db-creds tokens=[] keyboard=us key=user:42",
    "PWD=/srv/app/current password_file=/run/secrets/db",
    "see https://example.com:8443/path?page=2 and redis://localhost:6379/0",
    "Linux version 2.6.5-1.358 (gcc version 3.3.3 20040412)",
    "sklearn: sk-learn-pipeline-step-definition-x failed",
    "password == '' or token != expected",
    "Authorization: Bearer [REDACTED:jwt]",
    "",
]


def kinds_in(s: str) -> set[str]:
    return set(PLACEHOLDER.findall(s))


@pytest.mark.parametrize(("text", "expected"), REDACT)
def test_redacts(scrubber: Scrubber, text: str, expected: str) -> None:
    assert scrubber.text(text) == expected


@pytest.mark.parametrize("text", KEEP)
def test_keeps_ordinary_error_text(scrubber: Scrubber, text: str) -> None:
    assert scrubber.text(text) == text
    assert not scrubber.contains_secret(text)


@pytest.mark.parametrize("text", [t for t, _ in REDACT] + KEEP)
def test_idempotent(scrubber: Scrubber, text: str) -> None:
    once = scrubber.text(text)
    assert scrubber.text(once) == once


def test_every_kind_is_declared_and_exercised(scrubber: Scrubber) -> None:
    deep: Any = []
    for _ in range(40):
        deep = [deep]
    from_data = kinds_in(str(scrubber.data({"token": 1, "deep": deep})))
    emitted = set().union(*(kinds_in(out) for _, out in REDACT)) | from_data
    assert emitted == set(KINDS)


def test_contains_secret(scrubber: Scrubber) -> None:
    assert all(scrubber.contains_secret(t) for t, _ in REDACT)


def test_clean_text_is_returned_as_is(scrubber: Scrubber) -> None:
    text = "ValueError: invalid literal for int() with base 10: 'abc'"
    assert scrubber.text(text) is text


def test_emails_can_be_kept() -> None:
    text = "notify ops@example.com with password=hunter2"
    assert Scrubber(emails=False).text(text) == f"notify ops@example.com with password={r('key_value')}"


def test_extra_keys_in_text_and_data() -> None:
    custom = Scrubber(extra_keys=["SSN", "iban"])
    assert custom.text("ssn=123-45-6789 ok") == f"ssn={r('key_value')} ok"
    assert custom.data({"user_ssn": "123-45-6789", "Bank-IBAN": "DE89", "name": "x"}) == {
        "user_ssn": r("by_key"),
        "Bank-IBAN": r("by_key"),
        "name": "x",
    }
    assert Scrubber().text("ssn=123-45-6789 ok") == "ssn=123-45-6789 ok"


# --- data() ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password", "db_password", "dbPassword", "X-Api-Key", "apiKey", "AWS_SECRET_ACCESS_KEY", "client_secret",
        "Authorization", "proxy-authorization", "Cookie", "set-cookie", "session", "sessionId", "session_id",
        "credentials", "private_key", "dsn", "SENTRY_DSN", "access_token", "csrftoken", "passwd", "pwd", "secret",
        "auth", "jwt",
    ],
)  # fmt: skip
def test_data_redacts_sensitive_keys_whatever_the_value(scrubber: Scrubber, key: str) -> None:
    for value in ("plain", 12345, None, ["a", "b"], {"nested": "x"}):
        assert scrubber.data({key: value}) == {key: r("by_key")}


@pytest.mark.parametrize(
    "key",
    ["tokenizer", "token_count", "max_tokens", "author", "secret_name", "keyboard", "key", "user",
     "password_reset_view", "auth_method", "sessions_count"],
)  # fmt: skip
def test_data_keeps_ordinary_keys(scrubber: Scrubber, key: str) -> None:
    assert scrubber.data({key: "value 42"}) == {key: "value 42"}


def test_data_recurses_without_mutating(scrubber: Scrubber) -> None:
    Point = namedtuple("Point", "x y")
    event: dict[Any, Any] = {
        "message": "connect postgres://app:s3cr3t@db/app failed",
        "headers": {"X-Api-Key": "abc", "Accept": "application/json"},
        "frames": [{"vars": {"password": "hunter2", "n": 3}}, ("token=abc123", 7, None)],
        "point": Point("password=hunter2", 2.5),
        "flags": [True, False, None, 1.5, b"password=raw-bytes"],
        42: "int keys are fine",
    }
    before = copy.deepcopy(event)
    out = scrubber.data(event)
    assert event == before  # input untouched
    assert out == {
        "message": f"connect postgres://app:{r('url_password')}@db/app failed",
        "headers": {"X-Api-Key": r("by_key"), "Accept": "application/json"},
        "frames": [{"vars": {"password": r("by_key"), "n": 3}}, (f"token={r('key_value')}", 7, None)],
        "point": Point(f"password={r('key_value')}", 2.5),
        "flags": [True, False, None, 1.5, b"password=raw-bytes"],  # non-str scalars unchanged
        42: "int keys are fine",
    }
    assert isinstance(out["point"], Point)
    assert isinstance(out["frames"][1], tuple)


def test_data_cuts_deep_and_cyclic_structures(scrubber: Scrubber) -> None:
    deep: Any = "password=hunter2"
    for _ in range(1_000):
        deep = {"level": [deep]}
    out = scrubber.data(deep)
    assert r("too_deep") in str(out) and "hunter2" not in str(out)
    cyclic: dict[str, Any] = {"name": "loop", "items": []}
    cyclic["items"].append(cyclic)
    assert "[REDACTED:too_deep]" in str(scrubber.data(cyclic))
    shallow = {"a": {"b": {"c": ["d"]}}}
    assert scrubber.data(shallow) == shallow


@pytest.mark.parametrize("value", [0, 3.5, None, True, b"bytes"])
def test_data_passes_scalars_through(scrubber: Scrubber, value: object) -> None:
    assert scrubber.data(value) is value


# --- secrets planted in real-looking stack traces ----------------------------------------------------------

PYTHON_TRACE = """Traceback (most recent call last):
  File "/srv/app/api/orders.py", line 88, in create_order
    customer = client.fetch(customer_id, timeout=3)
  File "/usr/lib/python3.11/site-packages/httpx/_client.py", line 1013, in send
    raise exc
httpx.HTTPStatusError: {secret}
"""
JAVA_TRACE = """org.springframework.web.client.HttpClientErrorException: {secret}
\tat org.springframework.web.client.DefaultResponseErrorHandler.handleError(DefaultResponseErrorHandler.java:122)
\tat com.example.orders.PaymentClient.charge(PaymentClient.java:57)
\tat java.base/java.lang.Thread.run(Thread.java:833)
Caused by: java.net.SocketTimeoutException: connect timed out after 30000ms
"""
# (kind, the secret, a message carrying it, that message scrubbed)
PLANTED = [
    ("aws_key", "AKIAIOSFODNN7EXAMPLE", "key AKIAIOSFODNN7EXAMPLE denied", f"key {r('aws_key')} denied"),
    ("aws_secret", AWS_SECRET, f"aws_secret_access_key={AWS_SECRET}", f"aws_secret_access_key={r('aws_secret')}"),
    ("bearer", "Zm9vYmFyMTIz", "401, Authorization: Bearer Zm9vYmFyMTIz", f"401, Authorization: Bearer {r('bearer')}"),
    ("api_token", GHP, f"bad credentials {GHP}", f"bad credentials {r('api_token')}"),
    ("url_password", "s3cr3t", "no postgres://app:s3cr3t@db/app", f"no postgres://app:{r('url_password')}@db/app"),
    ("key_value", "hunter2", "login rejected for password=hunter2", f"login rejected for password={r('key_value')}"),
    ("private_key", "MIIEowIBAAKCAQEA", "-----BEGIN PRIVATE KEY-----\\nMIIEowIBAAKCAQEA\\n-----END PRIVATE KEY----- x",
     f"{r('private_key')} x"),
    ("jwt", JWT, f"expired {JWT}", f"expired {r('jwt')}"),
    ("credit_card", "4111 1111 1111 1111", "card 4111 1111 1111 1111 declined", f"card {r('credit_card')} declined"),
    ("email", "bob@example.com", "no account for bob@example.com", f"no account for {r('email')}"),
]  # fmt: skip


@pytest.mark.parametrize("trace", [PYTHON_TRACE, JAVA_TRACE], ids=["python", "java"])
@pytest.mark.parametrize(("kind", "secret", "message", "scrubbed"), PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_secret_leaves_the_rest_of_the_trace_intact(
    scrubber: Scrubber, trace: str, kind: str, secret: str, message: str, scrubbed: str
) -> None:
    out = scrubber.text(trace.format(secret=message))
    assert secret not in out
    assert kinds_in(out) == {kind}
    assert out == trace.format(secret=scrubbed)  # everything but the secret is still there, byte for byte


def test_ordinary_traces_are_untouched(scrubber: Scrubber) -> None:
    for trace in (PYTHON_TRACE, JAVA_TRACE):
        text = trace.format(secret="Client error '404 Not Found' for url 'https://api.example.com/v1/orders/7'")
        assert scrubber.text(text) == text


# --- size, unicode, hostile input ----------------------------------------------------------------------------


def test_very_long_input(scrubber: Scrubber) -> None:
    clean = JAVA_TRACE.format(secret="timeout") * 2_000  # ~500 KB
    assert scrubber.text(clean) == clean
    dirty = clean + "password=hunter2\n" + clean
    assert scrubber.text(dirty) == clean + f"password={r('key_value')}\n" + clean


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "hostile",
    ["eyJ" * 100_000, "@a." * 100_000, "://a:" * 60_000, "password=" * 30_000, "a-" * 150_000, "4" * 300_000,
     "-----BEGIN RSA PRIVATE KEY-----" * 10_000, "b_" * 150_000, "Bearer " * 40_000, '"token": "' * 30_000],
)  # fmt: skip
def test_hostile_input_stays_linear(scrubber: Scrubber, hostile: str) -> None:
    # A quadratic (or worse) pattern runs for minutes on these and trips the timeout; linear ones take ~0.1 s.
    out = scrubber.text(hostile)
    assert scrubber.text(out) == out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ошибка: password=пароль123 для пользователя", f"Ошибка: password={r('key_value')} для пользователя"),
        ("İstanbul şubesi token=abc123 ü", f"İstanbul şubesi token={r('key_value')} ü"),
        ('🔥 api_key="x1y2" 🔥', f'🔥 api_key="{r("key_value")}" 🔥'),
        ("ユーザー bob@example.com の AKIAIOSFODNN7EXAMPLE", f"ユーザー {r('email')} の {r('aws_key')}"),
        ("全角 ４１１１１１１１１１１１１１１１ は数字だけ", "全角 ４１１１１１１１１１１１１１１１ は数字だけ"),
        ("naïve café password: s3cr3t", f"naïve café password: {r('key_value')}"),
    ],
)  # fmt: skip
def test_unicode(scrubber: Scrubber, text: str, expected: str) -> None:
    assert scrubber.text(text) == expected
    assert scrubber.text(expected) == expected


# --- real recorded data ------------------------------------------------------------------------------------


def test_no_false_positives_on_recorded_logs_and_traces() -> None:
    if not EVALDATA.is_dir():
        pytest.skip(f"recorded data not found at {EVALDATA}: check out ../shared/evaldata next to the project")
    scrubber = Scrubber(emails=False)  # the logs name real build hosts and Erlang nodes, which are not secrets
    changed = []
    for path in sorted(EVALDATA.rglob("*")):
        if path.is_file() and path.suffix not in {".gz", ".zip"}:
            text = path.read_text(errors="replace")
            if scrubber.text(text) != text:
                changed.append(path.relative_to(EVALDATA))
    assert changed == []


def test_idempotent_on_random_mixtures(scrubber: Scrubber) -> None:
    # Glued fragments make neighbours change under redaction (a token after "hunter2", a key after a quote).
    pieces = [t for t, _ in REDACT] + KEEP + [" ", "\n", ": ", "=", '"', "'", "{", "]", "_", "-", "x", "1", "é"]
    rng = random.Random(20240501)
    for _ in range(3_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        once = scrubber.text(text)
        assert scrubber.text(once) == once, text


def test_cached_scrubber_answers_as_the_scrubber_on_first_and_repeated_calls() -> None:
    from agent.ingest.scrub import CachedScrubber, Scrubber

    plain, cached = Scrubber(), CachedScrubber(max_entries=3)
    texts = [
        "password=hunter2 for db",
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
        "mail bob@example.com now",
        "nothing secret here",
        "",
    ]
    for _ in range(3):  # misses, hits, and the bounded cache emptied on the way
        assert [cached.text(t) for t in texts] == [plain.text(t) for t in texts]
    data = {"token": "x", "note": texts[1], "list": [texts[0], 3, None], "n": 1.5}
    assert cached.data(data) == plain.data(data) and cached.data(data) == plain.data(data)
    assert cached.text(texts[0]) != texts[0]


def test_cached_scrubber_is_bounded_by_size_as_well_as_count() -> None:
    from agent.ingest.scrub import CachedScrubber, Scrubber

    plain, cached = Scrubber(), CachedScrubber(max_entries=1_000, max_chars=64_000)
    traces = [f"Traceback line {i}\n" + "x" * 900 + " password=hunter2" for i in range(200)]
    for t in traces:
        assert cached.text(t) == plain.text(t)
        assert cached._chars <= 64_000
        assert sum(len(k) + len(v) for k, v in cached._text_cache.items()) == cached._chars
    huge = "y" * 5_000 + " token=abcdefghijklmnopqrstuvwxyz0123456789"
    assert cached.text(huge) == plain.text(huge)
    assert huge not in cached._text_cache  # longer than a 64th of the bound: scrubbed each time, not kept
