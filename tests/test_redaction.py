"""workbench.redaction: secrets under sensitive names never reach the rendered bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workbench._json import decode
from workbench.redaction import SENSITIVE_HEADERS, encode_redacted, sensitive_names

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
