"""Tests for agent.ingest.scrub: one table per credential format, what must be redacted and what must stay.

The secrets below are made-up values in the real formats (lengths, prefixes, alphabets).
"""

from __future__ import annotations

import pytest

from agent.ingest.scrub import Scrubber

AKIA = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
RANDOM40 = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2z4AbC6d"
SLACK_HOOK = "https://hooks.slack.com/services/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"
AZURE_KEY = "abcdEFGH1234abcdEFGH1234abcdEFGH1234abcdEFGH1234abcdEFGH1234abcdEFGH1234ab1234AB=="
PYPI = "pypi-AgEIcHlwaS5vcmcCJGFiY2RlZmdoLWlqa2wtbW5vcC1xcnN0LXV2d3h5ejAxMjM0NTYAAIKlJHsicGVybWlzc2lvbnMi"


def r(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# format -> (input, expected output)
POSITIVE: list[tuple[str, str, str]] = [
    ("aws_secret_assignment", f"aws_secret_access_key={AWS_SECRET}", f"aws_secret_access_key={r('aws_secret')}"),
    ("aws_secret_after_id", f"creds {AKIA} {AWS_SECRET} rejected", f"creds {r('aws_key')} {r('aws_secret')} rejected"),
    ("aws_secret_colon_pair", f"{AKIA}:{AWS_SECRET}", f"{r('aws_key')}:{r('aws_secret')}"),
    ("aws_sha1_after_id_kept", f"{AKIA} commit 3f786850e387550fdab836ed7e6dc881de23001b", f"{r('aws_key')} commit 3f786850e387550fdab836ed7e6dc881de23001b"),
    ("aws_secret_csv", f"Access key ID,Secret access key\n{AKIA},{AWS_SECRET}", f"Access key ID,Secret access key\n{r('aws_key')},{r('aws_secret')}"),
    ("slack_webhook", f"POST {SLACK_HOOK} failed: 404", f"POST https://hooks.slack.com/services/{r('webhook')} failed: 404"),
    ("slack_workflow_webhook", "https://hooks.slack.com/workflows/T0AB12CDE/A0123/4567/aB3dE5fG7hJ9kL1mN2pQ", f"https://hooks.slack.com/workflows/{r('webhook')}"),
    ("discord_webhook", "https://discord.com/api/webhooks/123456789012345678/aB3dE5fG7hJ9kL1mN2pQ4rS6-tU8", f"https://discord.com/api/webhooks/{r('webhook')}"),
    ("slack_bot_token", "auth xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", f"auth {r('api_token')}"),
    ("slack_user_token", "xoxp-123456789012-123456789012-123456789012-abcdef0123456789abcdef0123456789", r("api_token")),
    ("slack_app_token", "xapp-1-A0123456789-1234567890123-abcdef0123456789abcdef", r("api_token")),
    ("github_fine_grained", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU x", f"{r('api_token')} x"),
    ("github_app_installation", "token ghs_16C7e42F292c6912E7710c838347Ae178B4a used", f"token {r('api_token')} used"),
    ("github_app_user", "ghu_16C7e42F292c6912E7710c838347Ae178B4a", r("api_token")),
    ("github_refresh", "ghr_16C7e42F292c6912E7710c838347Ae178B4a", r("api_token")),
    ("gitlab_personal", "glpat-xY9zAbCdEfGhIjKlMnOp rejected", f"{r('api_token')} rejected"),
    ("gitlab_deploy", "gldt-xY9zAbCdEfGhIjKlMnOp", r("api_token")),
    ("gitlab_runner", "glrt-xY9zAbCdEfGhIjKlMnOp", r("api_token")),
    ("gitlab_trigger", "glptt-0123456789abcdef0123456789abcdef01234567", r("api_token")),
    ("google_api_key", "key=AIzaSyA1234567890abcdefghijklmnopqrstuv&q=x", f"key={r('api_token')}&q=x"),
    ("google_oauth_secret", "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", r("api_token")),
    ("google_access_token", "ya29.a0AfH6SMBx3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2z", r("api_token")),
    ("stripe_secret", "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc failed", f"stripe {r('api_token')} failed"),
    ("stripe_restricted", "rk_live_4eC39HqLyjWDarjtT1zdp7dc", r("api_token")),
    ("stripe_webhook_secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw bad", f"{r('api_token')} bad"),
    ("openai_project", "openai sk-proj-abcDEF1234567890abcdefGHIJKL failed", f"openai {r('api_token')} failed"),
    ("openai_legacy", "sk-" + "Ab1Cd2Ef3Gh4" * 4, r("api_token")),
    ("anthropic", "sk-ant-api03-abcDEF1234567890abcdefGHIJKL-xyz0 failed", f"{r('api_token')} failed"),
    ("npm", "npm npm_abcdefghijklmnopqrstuvwxyz0123456789 failed", f"npm {r('api_token')} failed"),
    ("pypi", f"upload with {PYPI} failed", f"upload with {r('api_token')} failed"),
    ("azure_storage", f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net", f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={r('key_value')};EndpointSuffix=core.windows.net"),
    ("azure_service_bus", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=abcdEFGH1234abcdEFGH1234abcdEFGH1234abcd=", f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={r('key_value')}"),
    ("azure_sas_url", "GET https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&sig=aB3dE5fG7hJ9kL1mN2pQ%2B4rS6tU8%3D 403", f"GET https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&sig={r('key_value')} 403"),
    ("postgres_url", "postgresql://app:s3cr3tpw@db.internal:5432/app", f"postgresql://app:{r('url_password')}@db.internal:5432/app"),
    ("mysql_url", "mysql+pymysql://root:hunter2@127.0.0.1/db", f"mysql+pymysql://root:{r('url_password')}@127.0.0.1/db"),
    ("redis_url_no_user", "redis://:s3cr3tpw@cache:6379/0", f"redis://:{r('url_password')}@cache:6379/0"),
    ("mongodb_srv", "mongodb+srv://user:p%40ss@cluster0.mongodb.net/db", f"mongodb+srv://user:{r('url_password')}@cluster0.mongodb.net/db"),
    ("ado_net", "Server=db;User Id=sa;Password=Sup3rS3cret!;", f"Server=db;User Id=sa;Password={r('key_value')};"),
    ("entropy_after_secret", "client_secret 8f3e9a7b6c5d4e3f2a1b0c9d8e7f6a5b invalid", f"client_secret {r('high_entropy')} invalid"),
    ("entropy_after_key", "signing key: Zk3pQ9vX2mL8nR4tY7wB1cF6hJ0sD5gA.", f"signing key: {r('high_entropy')}."),
    ("entropy_after_token_is", "refresh token is 4f1c2d7e9b1a4c55a0c27d1e6b9f3a10", f"refresh token is {r('high_entropy')}"),
    ("entropy_compound", "apikey Zk3pQ9vX2mL8nR4tY7wB1cF6hJ0sD5gA", f"apikey {r('high_entropy')}"),
]  # fmt: skip

# format -> text that looks close but holds no secret
NEGATIVE: list[tuple[str, str]] = [
    ("etc_passwd", "open /etc/passwd: cannot read property"),
    ("etc_shadow_path", "permission denied: /etc/shadow: token expired"),
    ("aws_40_chars_without_id", f"sha {RANDOM40} mismatch"),
    ("slack_docs_url", "see https://api.slack.com/messaging/webhooks for setup"),
    ("slack_hooks_host_only", "could not resolve hooks.slack.com"),
    ("xox_short", "xoxb-1 is not a token"),
    ("github_prefix_only", "ghs_ is the prefix of installation tokens"),
    ("gitlab_word", "glpat-short"),
    ("google_aiza_short", "AIzaSy is where keys start"),
    ("stripe_publishable_test_word", "sk_live_ mode"),
    ("whsec_short", "whsec_abc"),
    ("sk_learn_name", "sk-learn-pipeline-step-number-one failed"),
    ("npm_command", "npm_config_cache=/tmp/npm"),
    ("pypi_project", "pypi-simple index unavailable"),
    ("azure_names_only", "AccountName=myaccount;EndpointSuffix=core.windows.net"),
    ("sig_short", "GET /x?sig=abc"),
    ("url_without_password", "postgresql://app@db.internal:5432/app"),
    ("url_port", "redis://cache:6379/0"),
    ("entropy_word_value", "invalid token: connection refused"),
    ("entropy_no_digits", "cache key: user_profile_settings_v"),
    ("entropy_monkey", "monkey 8f3e9a7b6c5d4e3f2a1b0c9d8e7f6a5b"),
    ("entropy_path", "key /var/lib/app/keys/0123456789abcdef.pem not found"),
    ("entropy_short", "token abc123 expired"),
    ("token_count", "token_count=5 tokenizer=gpt2"),
    ("entropy_java_frame", "at org.jfree.data.KeyedObjects2D.removeColumn(KeyedObjects2D.java:378)"),
    ("entropy_kube_name", "kubectl delete secret my-app-51-logs-script -n ns-51"),
    ("duplicate_key", "duplicate key value violates unique constraint users_email_key"),
]


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    return Scrubber()


@pytest.mark.parametrize(("text", "expected"), [p[1:] for p in POSITIVE], ids=[p[0] for p in POSITIVE])
def test_format_is_redacted(scrubber: Scrubber, text: str, expected: str) -> None:
    assert scrubber.text(text) == expected
    assert scrubber.text(expected) == expected


@pytest.mark.parametrize("text", [n[1] for n in NEGATIVE], ids=[n[0] for n in NEGATIVE])
def test_lookalike_is_kept(scrubber: Scrubber, text: str) -> None:
    assert scrubber.text(text) == text


def test_every_format_of_the_issue_has_both_tables() -> None:
    families = ("aws_secret", "slack", "github", "gitlab", "google", "stripe", "openai", "anthropic", "npm", "pypi",
                "azure", "url", "entropy")  # fmt: skip
    for family in families:
        assert any(name.startswith(family) or family in name for name, *_ in POSITIVE), family
    for family in ("aws", "slack", "github", "gitlab", "google", "stripe", "npm", "pypi", "azure", "url", "entropy"):
        assert any(family in name or name.startswith(family[:3]) for name, _ in NEGATIVE), family
