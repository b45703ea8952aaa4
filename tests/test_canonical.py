"""Tests of request canonicalisation, the replay key, redaction and occurrence numbering."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Collection
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from workbench.capture.canonical import _KEPT_HEADERS as KEPT_HEADERS
from workbench.capture.canonical import (
    REDACTED,
    canonical_request,
    redact_headers,
    redact_json,
    request_key,
)
from workbench.exceptions import ConfigError
from workbench.redaction import sensitive_names

URL = "https://api.openai.com/v1/chat/completions"
JSON_HEADERS = {"content-type": "application/json"}


def key_of(
    body: bytes, url: str = URL, method: str = "POST", volatile_fields: Collection[str] = ()
) -> str:
    canonical = canonical_request(method, url, JSON_HEADERS, body, volatile_fields=volatile_fields)
    return request_key(canonical)


# -- strategies -------------------------------------------------------------------------------

text = st.text(st.characters(codec="utf-8"), max_size=12)  # no lone surrogates
# Member names that are not secret, so that a value under them must reach the key.
names = text.filter(lambda name: redact_json({name: 0}) == {name: 0})
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(names, children, max_size=4),
    max_leaves=20,
)
bodies = st.dictionaries(names, values, min_size=1, max_size=5)


def shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {name: shuffled(item, rng) for name, item in items}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


def leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for name, item in value.items() for p in leaf_paths(item, (*prefix, name))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in leaf_paths(item, (*prefix, index))]
    return [prefix]


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    result = copy.deepcopy(value)
    target = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return result


def get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


# -- canonical form ---------------------------------------------------------------------------


def test_url_is_normalised() -> None:
    """Host is lower-cased, default ports, credentials and fragments dropped, query sorted."""
    canonical = canonical_request(
        "post", "HTTPS://user:pw@API.OpenAI.com:443/v1/x?b=2&a=1&a=0#frag", {}, None
    )
    assert canonical["method"] == "POST"
    assert canonical["url"] == "https://api.openai.com/v1/x"
    assert canonical["path"] == "/v1/x"
    assert canonical["query"] == [["a", "0"], ["a", "1"], ["b", "2"]]
    other_port = canonical_request("GET", "http://127.0.0.1:8080", {}, None)
    assert other_port["url"] == "http://127.0.0.1:8080/"
    ipv6 = canonical_request("GET", "http://[::1]:80/p", {}, None)
    assert ipv6["url"] == "http://[::1]/p"


def test_headers_keep_meaningful_ones_and_redact_credentials() -> None:
    """Only provider-relevant headers are kept; credential headers show as redacted."""
    headers = [
        ("Authorization", "Bearer sk-live-123"),
        ("Content-Type", "application/json"),
        ("anthropic-version", "2023-06-01"),
        ("User-Agent", "OpenAI/Python 1.0"),
        ("X-Stainless-Retry-Count", "0"),
        ("X-Api-Key", "sk-ant-456"),
    ]
    canonical = canonical_request("POST", URL, headers, b"{}")
    assert canonical["headers"] == {
        "authorization": REDACTED,
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": REDACTED,
    }


def test_redact_headers_keeps_all_and_joins_repeats() -> None:
    """redact_headers lower-cases names, joins repeated headers and redacts configured ones."""
    result = redact_headers(
        [("Accept", "a"), ("accept", "b"), ("Cookie", "c=1"), ("X-Tenant", "t")],
        sensitive_fields=["x-tenant"],
    )
    assert result == {"accept": "a, b", "cookie": REDACTED, "x-tenant": REDACTED}


_HEADER_NAMES = st.sampled_from(
    [
        "Content-Type",
        "accept",
        "Accept",
        "OpenAI-Organization",
        "anthropic-beta",
        "Authorization",
        "x-api-key",
        "Cookie",
        "X-Auth-Token",
        "x-tenant",
        "user-agent",
        "X-Stainless-Retry-Count",
        "x-request-tag",
    ]
)
_HEADER_VALUES = st.sampled_from(["a", "public-1", "sk-live-123", "Bearer tok123456", ""])


@given(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=8), st.booleans())
def test_canonical_headers_are_the_redacted_headers_kept(
    headers: list[tuple[str, str]], configured: bool
) -> None:
    """The canonical request's headers are exactly redact_headers' result filtered to the kept
    and the credential ones, repeats, allow-listed values and configured names included."""
    sensitive = sensitive_names(
        ["x-tenant", "openai-organization"] if configured else [],
        allowed_values=["public-[0-9]+"],
    )
    redacted = redact_headers(headers, sensitive)
    expected = {
        name: value for name, value in redacted.items() if name in KEPT_HEADERS or value == REDACTED
    }
    canonical = canonical_request("POST", URL, headers, b"{}", sensitive_fields=sensitive)
    assert canonical["headers"] == expected


def test_non_json_bodies_are_kept_as_text_or_base64() -> None:
    """Text is kept as text, binary as base64, none as None, unwalkable JSON as a digest."""
    assert canonical_request("POST", URL, {}, b"hello")["body"] == {"text": "hello"}
    binary = canonical_request("POST", URL, {}, b"\xff\xfe\x00")
    assert (binary["body_format"], binary["body"]) == ("base64", {"base64": "//4A"})
    assert canonical_request("POST", URL, {}, b"")["body_format"] is None
    broken = canonical_request("POST", URL, {}, b'{"api_key": "sk-1", broken')
    assert broken["body_format"] == "digest"  # JSON we cannot redact is not kept
    assert "sk-1" not in orjson.dumps(broken).decode()
    deep = b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}"
    assert canonical_request("POST", URL, {}, deep)["body_format"] == "digest"
    assert request_key(canonical_request("POST", URL, {}, deep))


def test_form_bodies_are_sorted_and_redacted() -> None:
    """An urlencoded form is parsed, sorted, and its secrets redacted."""
    canonical = canonical_request(
        "POST",
        "https://auth.example.com/token",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"grant_type=client_credentials&client_secret=s3cr3t&a=%C3%A9",
    )
    assert canonical["body_format"] == "form"
    assert canonical["body"] == [
        ["a", "é"],
        ["client_secret", REDACTED],
        ["grant_type", "client_credentials"],
    ]


def test_multipart_boundaries_do_not_change_the_key() -> None:
    """Two uploads of the same file with different random boundaries share a key."""

    def upload(boundary: str) -> dict[str, Any]:
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
            f"data\r\n--{boundary}--\r\n"
        ).encode()
        content_type = f"multipart/form-data; boundary={boundary}"
        return canonical_request("POST", URL, {"content-type": content_type}, body)

    first, second = upload("abc123"), upload("zzz999")
    assert request_key(first) == request_key(second)
    assert first["headers"]["content-type"] == second["headers"]["content-type"]
    assert "abc123" not in orjson.dumps(first).decode()


@given(bodies)
def test_json_bodies_round_trip(body: dict[str, Any]) -> None:
    """Unicode and nested JSON come back unchanged and survive a JSON round trip."""
    canonical = canonical_request("POST", URL, JSON_HEADERS, orjson.dumps(body))
    assert canonical["body_format"] == "json"
    assert canonical["body"] == body
    assert orjson.loads(orjson.dumps(canonical)) == canonical


# -- the key ----------------------------------------------------------------------------------


@given(bodies, st.randoms(use_true_random=False))
def test_key_ignores_member_order(body: dict[str, Any], rng: random.Random) -> None:
    """Permuting object members at every depth gives the same key."""
    assert key_of(orjson.dumps(body)) == key_of(orjson.dumps(shuffled(body, rng)))


@given(bodies)
def test_key_ignores_serialisation(body: dict[str, Any]) -> None:
    """Whitespace, escaping (ensure_ascii) and separators do not change the key."""
    expected = key_of(orjson.dumps(body))
    variants = [
        json.dumps(body, ensure_ascii=True).encode(),
        json.dumps(body, ensure_ascii=False, indent=2).encode(),
        json.dumps(body, separators=(",", ":"), sort_keys=True).encode(),
        b"  \n" + json.dumps(body, ensure_ascii=False).encode() + b"\n",
    ]
    for variant in variants:
        assert key_of(variant) == expected


@settings(max_examples=200)
@given(bodies, st.data())
def test_any_value_change_changes_the_key(body: dict[str, Any], data: st.DataObject) -> None:
    """Replacing any leaf by a different JSON value (type included) changes the key."""
    paths = leaf_paths(body)
    assume(paths)
    path = data.draw(st.sampled_from(paths))
    old = get(body, path)
    new = data.draw(leaves.filter(lambda v: orjson.dumps(v) != orjson.dumps(old)))
    assert key_of(orjson.dumps(body)) != key_of(orjson.dumps(replaced(body, path, new)))


def test_key_distinguishes_json_types_and_list_order() -> None:
    """1, 1.0, "1" and true are four different keys; 1e2 equals 100.0; list order counts."""
    keys = {key_of(b'{"n": %s}' % literal) for literal in (b"1", b"1.0", b'"1"', b"true")}
    assert len(keys) == 4
    assert key_of(b'{"n": 1e2}') == key_of(b'{"n": 100.0}')
    assert key_of(b'{"n": [1, 2]}') != key_of(b'{"n": [2, 1]}')
    assert key_of(b'{"s": "\\u00e9"}') == key_of('{"s": "é"}'.encode())
    assert key_of(b'{"s": "e\\u0301"}') != key_of('{"s": "é"}'.encode())


def test_key_covers_method_path_query_and_stream() -> None:
    """Method, path, query and the stream flag are in the key; host, port, headers are not."""
    body = b'{"model": "m", "stream": false}'
    base = key_of(body)
    assert key_of(body, method="PUT") != base
    assert key_of(body, url="https://api.openai.com/v1/completions") != base
    assert key_of(body, url=URL + "?api-version=1") != base
    assert key_of(b'{"model": "m", "stream": true}') != base
    assert key_of(body, url="http://127.0.0.1:9999/v1/chat/completions") == base
    other_headers = canonical_request("POST", URL, {"authorization": "x", "accept": "y"}, body)
    assert request_key(other_headers) == base


@given(bodies, st.lists(values, min_size=1, max_size=3), st.data())
def test_bare_volatile_names_are_ignored_at_any_depth(
    body: dict[str, Any], noise: list[Any], data: st.DataObject
) -> None:
    """A bare volatile name is left out wherever it occurs, so its values never change the key."""

    def sprinkle(value: Any, items: list[Any]) -> Any:
        if isinstance(value, dict):
            result = {name: sprinkle(item, items) for name, item in value.items()}
            put: bool = data.draw(st.booleans())
            if items and put:
                result["request_id"] = items.pop()
            return result
        if isinstance(value, list):
            return [sprinkle(item, items) for item in value]
        return value

    assume("request_id" not in orjson.dumps(body).decode())
    noisy = sprinkle(body, list(noise))
    noisy["request_id"] = "top"
    volatile = ["request_id"]
    assert key_of(orjson.dumps(noisy), volatile_fields=volatile) == key_of(
        orjson.dumps(body), volatile_fields=volatile
    )
    assert key_of(orjson.dumps(noisy)) != key_of(orjson.dumps(body))


def test_dotted_volatile_paths_are_ignored_only_there() -> None:
    """A dotted path leaves out that member only; a sibling still counts; lists fan out."""
    volatile = ["metadata.request_id", "messages.name"]
    base = {"metadata": {"request_id": "1", "user": "u"}, "messages": [{"name": "a", "c": 1}]}
    changed_volatile = {
        "metadata": {"request_id": "2", "user": "u"},
        "messages": [{"name": "b", "c": 1}],
    }
    changed_other = {"metadata": {"request_id": "1", "user": "v"}, "messages": base["messages"]}
    assert key_of(orjson.dumps(base), volatile_fields=volatile) == key_of(
        orjson.dumps(changed_volatile), volatile_fields=volatile
    )
    assert key_of(orjson.dumps(base), volatile_fields=volatile) != key_of(
        orjson.dumps(changed_other), volatile_fields=volatile
    )
    top_level = {"request_id": "9", **base}  # the dotted path does not match at other depths
    assert key_of(orjson.dumps(top_level), volatile_fields=volatile) != key_of(
        orjson.dumps(base), volatile_fields=volatile
    )


def test_volatile_query_parameters_and_recorded_volatile_fields() -> None:
    """Bare names also drop query parameters; the stored request remembers its volatile set."""
    recorded = canonical_request(
        "POST", URL + "?ts=1", JSON_HEADERS, b'{"a": 1, "ts": 5}', volatile_fields=["ts"]
    )
    assert recorded["volatile"] == ["ts"]
    plain = canonical_request("POST", URL + "?ts=2", JSON_HEADERS, b'{"a": 1, "ts": 6}')
    assert request_key(recorded) == request_key(plain, volatile_fields=["ts"])
    assert request_key(recorded) != request_key(plain)


@pytest.mark.parametrize("bad", ["", "a..b", ".a", "a.", "user"])
def test_malformed_volatile_fields_are_config_errors(bad: str) -> None:
    """An empty or malformed volatile name (or a bare string) raises ConfigError naming it."""
    fields: Any = bad if bad == "user" else [bad]
    with pytest.raises(ConfigError, match="volatile"):
        canonical_request("POST", URL, {}, b"{}", volatile_fields=fields)


# -- redaction --------------------------------------------------------------------------------

SENSITIVE = [
    "authorization",
    "api_key",
    "API-Key",
    "apiKey",
    "access_token",
    "Secret",
    "password",
    "x-api-key",
    "my_custom_secret",
]
secrets = st.text("0123456789abcdef", min_size=16, max_size=24).map(lambda s: f"sk-{s}")


@settings(max_examples=200)
@given(
    bodies,
    st.lists(st.tuples(st.sampled_from(SENSITIVE), secrets, st.booleans()), min_size=1),
    st.data(),
)
def test_no_secret_survives_canonicalisation(
    body: dict[str, Any], planted: list[tuple[str, str, bool]], data: st.DataObject
) -> None:
    """Secrets under sensitive names at any depth, in headers or query, never reach the output."""
    all_secrets = {secret for _, secret, _ in planted}
    assume(not any(secret in orjson.dumps(body).decode() for secret in all_secrets))
    planted_body = copy.deepcopy(body)
    for name, secret, wrapped in planted:
        value: Any = {"nested": [secret, {"deeper": secret}]} if wrapped else secret
        target = get(planted_body, data.draw(st.sampled_from(_container_paths(planted_body))))
        if isinstance(target, dict):
            target[name] = value
        else:
            target.append({name: value})
    one = planted[0][1]
    headers = [("Authorization", f"Bearer {one}"), ("My-Custom-Secret", one), ("Cookie", one)]
    url = f"{URL}?key={one}&API_KEY={one}&x=1"
    result = canonical_request(
        "POST", url, headers, orjson.dumps(planted_body), sensitive_fields=["my_custom_secret"]
    )
    dumped = orjson.dumps(result).decode()
    for secret in all_secrets:
        assert secret not in dumped
    assert result["headers"]["my-custom-secret"] == REDACTED


def _container_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        paths.append(prefix)
        for name, item in value.items():
            paths.extend(_container_paths(item, (*prefix, name)))
    elif isinstance(value, list):
        paths.append(prefix)
        for index, item in enumerate(value):
            paths.extend(_container_paths(item, (*prefix, index)))
    return paths


@given(bodies, secrets)
def test_redact_json_never_modifies_its_input(body: dict[str, Any], secret: str) -> None:
    """redact_json returns a redacted copy and leaves the original as it was."""
    assume(secret not in orjson.dumps(body).decode())
    value = {"outer": [body, {"Password": secret}], "token_usage": 3}
    before = copy.deepcopy(value)
    result = redact_json(value)
    assert value == before
    assert secret not in orjson.dumps(result).decode()
    assert result["outer"][0] is body  # parts without secrets are shared, not copied
    assert result["token_usage"] == 3


def test_redact_json_handles_tuples_and_custom_names() -> None:
    """Tuples are walked, configured names are matched case-insensitively, values replaced whole."""
    value = {"items": ({"Session-Id": "abc"}, {"secret": {"a": 1}}), "key": "not-a-secret-in-json"}
    result = redact_json(value, ["session_id"])
    assert result == {
        "items": ({"Session-Id": REDACTED}, {"secret": REDACTED}),
        "key": "not-a-secret-in-json",
    }


# -- occurrences ------------------------------------------------------------------------------
