"""The rule table of the scrubber: the patterns, key words and value lists every detector reads."""

from __future__ import annotations

import re
from typing import Final

KINDS: Final[tuple[str, ...]] = (
    "private_key", "url_password", "jwt", "api_token", "aws_key", "aws_secret", "bearer", "credit_card",
    "key_value", "webhook", "high_entropy", "email", "by_key", "too_deep",
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
        r"_(?<=[pousrtkfmc]_)"  # cheap first test: most "_" in snake_case code fail here
        r"(?:(?<=(gh[pousr])_)[A-Za-z0-9]{30,}"
        r"|(?<=(whsec)_)[A-Za-z0-9+/]{24,}"  # Stripe webhook signing secret
        r"|(?<=(github_pat)_)\w{40,}"
        r"|(?<=([spr]k)_)(?:live|test)_[A-Za-z0-9]{16,}"
        r"|(?<=(hf)_)[A-Za-z0-9]{30,}"
        r"|(?<=(npm)_)[A-Za-z0-9]{36})",
        re.ASCII,
    ),
    re.compile(
        r"-(?:(?<=(gl(?:pat|ptt|cbt|imt))-)[\w-]{20,}"  # GitLab personal, trigger, CI job, incoming mail
        r"|(?<=(gl[dfr]t)-)[\w-]{20,}"  # GitLab deploy, feed, runner
        r"|(?<=(glsoat)-)[\w-]{20,}"
        r"|(?<=(xox[abprse])-)[A-Za-z0-9-]{10,}"
        r"|(?<=(xapp)-)[A-Za-z0-9-]{10,}"  # Slack app-level token
        r"|(?<=(pypi)-)AgE[\w-]{50,}"  # PyPI upload token (a macaroon)
        r"|(?<=(GOCSPX)-)[\w-]{20,}"  # Google OAuth client secret
        r"|(?<=(sk)-)(?:proj-|svcacct-|admin-|ant-[a-z]{3,5}\d\d-)?[\w-]{20,})",
        re.ASCII,
    ),
    re.compile(r"A(?:Iza[\w-]{35}|(?:KIA|SIA|ROA|IDA|GPA|IPA|NPA|NVA|PKA|BIA|CCA)[A-Z0-9]{16})"),  # AKIA...: AWS
    re.compile(r"SG\.[\w-]{16,}\.[\w-]{16,}", re.ASCII),
    re.compile(r"ya29\.[\w-]{20,}", re.ASCII),  # Google OAuth access token
)
# After an AWS key id, a standalone 40-character base64 word is its secret access key (run only then).
_AWS_KEY_ID = re.compile(r"A(?:KIA|SIA)[A-Z0-9]{16}|\[REDACTED:aws_key\]")
_AWS_BARE_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
# Incoming-webhook URLs carry their credential in the path; the host stays readable.
_WEBHOOK = re.compile(
    r"(?:hooks\.slack\.com/(?:services|workflows|triggers)/|discord(?:app)?\.com/api/webhooks/)([\w/-]{16,})",
    re.ASCII,
)
# Azure shared access signatures: "...?sv=2022-11-02&sig=abc%2Bdef%3D"
_SAS_SIG = re.compile(r"[?&;]sig=(?!\[REDACTED:)([A-Za-z0-9%+/=]{16,})")
# "client_secret 8f3e...", "signing key: Zk3p...": a random value right after secret/token/key, on the lower-cased
# text; the value's case is read from the original.
_ENTROPY_WORDS: Final = ("secret", "token", "key")
# A word glued before the key word must make one of these ("apikey", "clientsecret"), not "monkey".
_ENTROPY_COMPOUNDS: Final = (
    "apikey", "apikeys", "accesskey", "secretkey", "privatekey", "signingkey", "masterkey", "accountkey", "authkey",
    "authtoken", "accesstoken", "refreshtoken", "idtoken", "apitoken", "clientsecret", "appsecret",
)  # fmt: skip
_ENTROPY_TAIL = re.compile(  # matched right after a word of _ENTROPY_WORDS, found with str.find
    r"s?(?:[\"']?[ \t]*[:=]>?[ \t]*|[\"']?[ \t]+(?:(?:is|was|of)[ \t]+)?)[\"']?"
    r"([a-z0-9+/_.=-]{20,})(?![a-z0-9+/_.=-])"
)
_AWS_SECRET_WINDOW: Final = 256  # characters around a key id searched for its secret
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
    "sessionkey", "session_key", "apikey", "api_key", "api-key", "accountkey", "account_key", "account-key", "accesskey", "access_key", "access-key",
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
    "privatekey", "accountkey", "auth", "authorization", "cookie", "cookies", "session", "sessionid", "sessid", "sessionkey",
    "credential", "credentials", "dsn", "jwt",
)  # fmt: skip
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
