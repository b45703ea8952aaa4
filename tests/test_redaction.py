"""workbench.redaction: secrets under sensitive names never reach the rendered bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench._json import decode
from workbench.redaction import REDACTED, SENSITIVE_HEADERS, encode_redacted, sensitive_names

NAMES = [
    "api_key",
    "API-Key",
    "x-api-key",
    "X_Api-KEY",
    "Authorization",
    "password",
    "session_token",
    "Session-TOKEN",
]


@given(
    name=st.sampled_from(NAMES),
    secret=st.text(alphabet="abcdefXYZ0123456789", min_size=12, max_size=30),
    depth=st.integers(min_value=0, max_value=4),
)
def test_secret_at_any_depth_is_not_in_the_bytes(name: str, secret: str, depth: int) -> None:
    """A secret under a sensitive name, however deep and however spelt, is not in the output."""
    value: object = {name: secret, "keep": "visible"}
    for _ in range(depth):
        value = {"nested": [value]}
    data = encode_redacted(value, sensitive_names(["session_token"]))
    assert secret.encode() not in data
    assert b"visible" in data


def test_values_without_secrets_are_unchanged() -> None:
    """Without a sensitive name the bytes are the plain rendering."""
    value = {"prompt": "tell me a secret-free story", "n": [1, 2]}
    assert decode(encode_redacted(value, sensitive_names())) == value


def test_credential_headers_are_listed_as_sent() -> None:
    """Header names are kept in their wire spelling for response-header redaction."""
    assert {"authorization", "x-api-key", "cookie"} <= SENSITIVE_HEADERS


def test_scrubbing_keeps_json_valid_whatever_the_secret_looks_like() -> None:
    """A remembered secret that looks like JSON syntax is scrubbed only inside strings."""
    from workbench.redaction import forget_secrets, remember_secret

    remember_secret('a1", "b": [1')  # a value that would break JSON if replaced in raw bytes
    try:
        value = {"note": 'x a1", "b": [1 y', "n": 1}
        assert decode(encode_redacted(value, sensitive_names())) == {
            "note": "x [REDACTED] y",
            "n": 1,
        }
    finally:
        forget_secrets()


def test_url_query_credentials_are_scrubbed_from_strings() -> None:
    """A key in a URL query inside a recorded string is scrubbed."""
    data = encode_redacted({"url": "https://h/v1?key=AIzaSyExample&x=1"}, sensitive_names())
    assert decode(data) == {"url": "https://h/v1?key=[REDACTED]&x=1"}


# -- one set of rules: names ------------------------------------------------------------------

# Realistic credentials: what a probe plants, each in the shape its service issues.
OPENAI_KEY = "sk-proj-Q7f3kLm9Xv2Rt8Wz1Yb4Nc6Hd0Jp5Gs"
ANTHROPIC_KEY = "sk-ant-api03-Zx8Kq2Lm7Vn4Bc1Xz9Qw3Er6Ty0Ui5Op"
AWS_KEY_ID = "AKIAZ7Q3X9K2M4N6P8R1"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq3k9T2vLp"
GITHUB_TOKEN = "ghp_4fG7hJ2kL9mN3pQ6rS8tV1wX5yZ0aB2cD4eF"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyXzQyIiwiaWF0IjoxNzAwMDAwMDAwfQ"
    ".Qm9ndXNTaWduYXR1cmVGb3JUZXN0c09ubHkxMjM0NTY"
)
TOKEN = "tok_live_8f3a9c2e71b64d05"

COMMON_SECRET_NAMES = [
    "token",
    "auth",
    "client_token",
    "openai_key",
    "access_key",
    "sig",
    "signature",
    "AWS_SECRET_ACCESS_KEY",
    "aws_session_token",
    "x-auth-token",
    "apiKey",
    "accessToken",
    "clientSecret",
    "db_password",
    "private_key",
    "credentials",
    "session_token",
    "id_token",
    "webhook_secret",
]

ORDINARY_FIELDS: dict[str, object] = {
    "max_tokens": 512,
    "tokens": ["Hello", " world"],
    "prompt_tokens": 11,
    "input_tokens": 11,
    "cache_read_input_tokens": 3,
    "tokens_in": 11,
    "token_count": 9,
    "request_key": "0f3a9c2e71b64d05a1b2c3d4e5f60718",
    "cache_key": "c0ffee00c0ffee00c0ffee00",
    "prompt_cache_key": "user-42-session-7",
    "key": "monday2024",
    "keys": ["a1b2c3d4e5", "f6a7b8c9d0"],
    "author": "Ada Lovelace 1843",
    "authority": "example.org",
    "token_type": "Bearer",
    "next_page_token": "pg_7f3a9c2e71b64d05",
    "public_key": "pk_9f8e7d6c5b4a39281706",
    "keyword": "tokenization",
    "logprobs": {"content": [{"token": "Hello", "logprob": -0.1}, {"token": " world"}]},
}


@given(
    name=st.sampled_from(COMMON_SECRET_NAMES),
    secret=st.sampled_from([TOKEN, AWS_SECRET, "Xq9-vL2_mR7pT4wZ8kB3"]),
    depth=st.integers(min_value=0, max_value=3),
)
def test_secrets_under_common_names_are_redacted(name: str, secret: str, depth: int) -> None:
    """A credential under any common secret name (gitleaks/detect-secrets style) is redacted."""
    value: object = {name: secret, "note": "kept"}
    for _ in range(depth):
        value = {"nested": [value]}
    data = encode_redacted(value, sensitive_names())
    assert secret.encode() not in data
    assert b"kept" in data


def test_ordinary_fields_are_kept() -> None:
    """Token counts, request keys, authors, logprob tokens, pagination cursors: not secrets."""
    from workbench.redaction import redact_json

    assert redact_json(ORDINARY_FIELDS) == ORDINARY_FIELDS
    assert decode(encode_redacted(ORDINARY_FIELDS, sensitive_names())) == ORDINARY_FIELDS


@given(
    name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-.ATOKEN", min_size=1, max_size=24),
    number=st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none(),
)
def test_numbers_survive_under_every_name_but_the_exact_ones(name: str, number: object) -> None:
    """The generic rules redact strings only: a count under a token-ish name is never lost."""
    from workbench.redaction import redact_json

    value = {name: number}
    if name.lower().replace("-", "_") not in frozenset(sensitive_names()):
        assert redact_json(value) == value


def test_one_name_list_for_queries_urls_forms_and_text() -> None:
    """?token=, sig= and access_key= are redacted in the recorded query and in any URL text:
    the query uses the same names as every other place."""
    from workbench.capture.canonical import canonical_request
    from workbench.redaction import scrub_text

    url = f"https://h/v1/x?token={TOKEN}&sig=Zm9vYmFyYmF6cXV4MTIz&access_key=ak9Xw2Lq7Vb3&n=1"
    canonical = canonical_request("GET", url, {}, None)
    assert dict(canonical["query"]) == {
        "token": REDACTED,
        "sig": REDACTED,
        "access_key": REDACTED,
        "n": "1",
    }
    text = scrub_text(f"GET {url} failed")
    assert TOKEN not in text and "Zm9vYmFy" not in text and "ak9Xw2" not in text
    assert text.endswith("&n=1 failed")


def test_name_value_pairs_in_text_are_scrubbed() -> None:
    """A log message's api_key=..., token: "...", or Authorization header keeps no value."""
    from workbench.redaction import scrub_text

    for line in (
        f"retrying with api_key={TOKEN}",
        f'payload {{"client_token": "{TOKEN}"}}',
        f"headers: Authorization: Bearer {TOKEN}",
        f"config={{'openai_key': '{TOKEN}'}}",
    ):
        assert TOKEN not in scrub_text(line), line
    prose = "the max_tokens: 512 and token_count=9; use the key: Enter"
    assert scrub_text(prose) == prose


@given(
    secret=st.sampled_from([OPENAI_KEY, ANTHROPIC_KEY, AWS_KEY_ID, GITHUB_TOKEN, JWT]),
    before=st.sampled_from(["", "key ", "(", '"', "value=", "Bearer "]),
    after=st.sampled_from(["", " ok", ")", '"', ",", "\n"]),
)
def test_well_known_key_shapes_are_scrubbed(secret: str, before: str, after: str) -> None:
    """sk-…, sk-ant-…, AKIA…, ghp_… and JWTs are scrubbed from text wherever they stand."""
    from workbench.redaction import scrub_text

    scrubbed = scrub_text(f"answer: {before}{secret}{after} done")
    assert secret not in scrubbed
    assert scrubbed.startswith("answer: ") and scrubbed.endswith(f"{after} done")


def test_credentials_in_url_userinfo_are_scrubbed() -> None:
    """postgres://user:password@host keeps the user and host, not the password."""
    from workbench.redaction import scrub_text

    assert scrub_text("dsn postgres://app:pa55w0rd-x@db:5432/x") == (
        f"dsn postgres://app:{REDACTED}@db:5432/x"
    )


def test_cloud_key_environment_names_are_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN and *_PASSWORD values are scrubbed once seen in the
    environment; PATH-like variables are not."""
    from workbench.redaction import remember_environment, scrub_text

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("PGPASSWORD", "correct-horse-7")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/ssh-XXXX1234/agent.77")
    remember_environment()
    text = scrub_text(f"{AWS_SECRET} correct-horse-7 /tmp/ssh-XXXX1234/agent.77")
    assert text == f"{REDACTED} {REDACTED} /tmp/ssh-XXXX1234/agent.77"


def test_allowlist_keeps_named_false_positives(tmp_path: Path) -> None:
    """capture.allowlist in workbench.yaml: listed fields and values that match are kept."""
    from workbench.config import load_config
    from workbench.redaction import redact_json, scrub_text, sensitive_names_for

    (tmp_path / "workbench.yaml").write_text(
        "capture:\n"
        "  sensitive_fields: [tenant]\n"
        "  allowlist:\n"
        "    fields: [csrf_token]\n"
        "    values: ['sk-test-[a-z0-9]+']\n"
    )
    names = sensitive_names_for(load_config(tmp_path / "workbench.yaml"))
    value = {
        "csrf_token": TOKEN,
        "token": TOKEN,
        "tenant": "acme",
        "note": "sk-test-abc123def456ghi789",
    }
    assert redact_json(value, names) == {
        "csrf_token": TOKEN,
        "token": REDACTED,
        "tenant": REDACTED,
        "note": "sk-test-abc123def456ghi789",
    }
    assert scrub_text("use sk-test-abc123def456ghi789", names) == "use sk-test-abc123def456ghi789"
    assert OPENAI_KEY not in scrub_text(f"use {OPENAI_KEY}", names)


def test_a_bad_allowlist_pattern_names_file_key_and_value(tmp_path: Path) -> None:
    """An allow-list value that is not a regular expression is a ConfigError naming it."""
    from workbench.config import load_config
    from workbench.exceptions import ConfigError

    (tmp_path / "workbench.yaml").write_text("capture:\n  allowlist:\n    values: ['sk-(']\n")
    with pytest.raises(ConfigError, match=r"allowlist.*sk-\("):
        load_config(tmp_path / "workbench.yaml")
