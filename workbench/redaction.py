"""Keeping secrets out of everything workbench writes: one set of rules, used everywhere.

The one home of what counts as a secret and of the walks and scans that remove it. The capture
layer applies it to request headers, queries, forms and bodies (through ``capture.canonical``), to
response headers, to the response bytes and to what is read from them (the answer text); the
recorder to parameters, results, states, span attributes and log records; and every output — the
JSON log files and stdout, OTLP exports, the CLI's ``--json``, HTML views, webhook payloads and
profile artefacts — scrubs what it writes with the same rules. It does not decide *where* those
places are: each channel calls in. How a name is judged is ``workbench._sensitive``'s.

Three kinds of evidence, each one list:

* **Names** (:class:`SensitiveNames`). A name — of a JSON member, header, query or form field,
  span attribute, log field, environment variable, or of a ``name=value`` / ``name: value`` /
  ``"name": "value"`` pair in text — is read lower-cased with ``-`` as ``_`` and split into
  words at ``_ . : / [ ]``. It is, in the manner of the gitleaks and detect-secrets rule sets:

  - *exact* when it is a built-in credential name (``authorization``, ``api_key``, ``password``,
    ``cookie``, ...) or one of ``capture.sensitive_fields``: the whole value is replaced,
    whatever its type;
  - *strong* when a word is, or contains, ``secret``, ``password``, ``passwd``, ``passphrase``,
    ``credential``, ``signature``, ``apikey``, ``privatekey``, or is ``pwd``, ``creds``,
    ``sig``, ``auth``, ``oauth``, ``bearer``, ``jwt``, ``cookie``, or has ``api`` and ``key``
    (``AWS_SECRET_ACCESS_KEY``, ``clientSecret``, ``x-auth-token``): any string is replaced;
  - *weak* for ``token`` (also fused: ``accessToken``) and ``key`` with a qualifier
    (``openai_key``, ``access_key``; a bare ``key`` only in a URL query): a string is replaced
    when it looks like a credential — eight or more characters without whitespace, with
    letters and digits, or twenty or more;
  - not sensitive when its last word says what the value *describes* (``token_count``,
    ``token_type``, ``secret_name``, ``auth_url``), or a word makes ``key``/``token`` ordinary
    (``request_key``, ``cache_key``, ``public_key``, ``next_page_token``, ``eos_token``).
    Plural ``tokens`` and ``keys`` are counts and lists, never credentials; ``author`` is not
    ``auth``.

  The generic rules replace strings only: numbers, booleans and ``null`` are kept, so token
  counts survive under any name.
* **Values seen.** Every value redacted by name is remembered (:func:`remember_secret`), as are
  the environment's credentials, and scrubbed wherever it turns up later — an error message, a
  traceback, a log line, a response body.
* **Shapes** of well-known keys, found in any text: OpenAI and Anthropic keys (``sk-…``,
  ``sk-ant-…``), AWS access key ids (``AKIA…``, ``ASIA…``), GitHub (``ghp_…``, ``github_pat_…``)
  and GitLab tokens, Slack tokens, Google API keys (``AIza…``), Stripe keys, Hugging Face
  tokens, JWTs, PEM private keys, ``Bearer``/``Basic`` credentials and the password of a URL's
  ``user:password@``.

False positives go in ``capture.allowlist`` of ``workbench.yaml``: ``fields`` (names the rules
would redact that are not secrets here) and ``values`` (regular expressions; a value that matches
one in full is kept). ``capture.sensitive_fields`` wins over the allow-list.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from workbench._json import decode, encode
from workbench._sensitive import (
    _BUILTIN,
    _BUILTIN_NAMES,
    _EXACT,
    _FRAGMENTS,
    _NOT,
    _STRONG,
    _WEAK,
    SensitiveNames,
    _normalise_name,  # noqa: F401 - re-exported for capture.canonical and debug
    _sensitive_set,
    sensitive_names,
    sensitive_names_for,
)

__all__ = [
    "REDACTED",
    "SENSITIVE_HEADERS",
    "SensitiveNames",
    "encode_redacted",
    "forget_secrets",
    "redact_headers",
    "redact_json",
    "remember_environment",
    "remember_secret",
    "scrub_bytes",
    "scrub_chunks",
    "scrub_derived",
    "scrub_json",
    "scrub_output",
    "scrub_rendered",
    "scrub_text",
    "sensitive_names",
    "sensitive_names_for",
]

_JSON: TypeAlias = Any
_Headers: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
_T = TypeVar("_T")

#: What a secret value is replaced by.
REDACTED = "[REDACTED]"

# --------------------------------------------------------------------------------------------
# Redaction by name
# --------------------------------------------------------------------------------------------


def redact_headers(headers: _Headers, sensitive_fields: Collection[str] = ()) -> dict[str, str]:
    """All headers, names lower-cased, with the values of credential headers replaced.

    Repeated headers are joined with ``", "`` as HTTP allows. A header is a credential when its
    name is sensitive by the rules of the module docstring (``authorization``, ``x-api-key``,
    ``cookie``, ``x-auth-token``, ...) or in ``sensitive_fields``; its whole value goes.
    """
    return _redact_headers(headers, _sensitive_set(sensitive_fields))


def _redact_headers(headers: _Headers, sensitive: SensitiveNames) -> dict[str, str]:
    result: dict[str, str] = {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    verdicts = sensitive._verdicts.get  # inlined cache hit: a dozen headers on every request
    for raw_name, value in items:
        name = raw_name.lower()
        verdict = verdicts(name)
        if verdict is None:
            verdict = sensitive.verdict(name)
        if verdict and not sensitive.allows(value):
            remember_secret(value)
            result[name] = REDACTED
        elif name in result:
            result[name] = f"{result[name]}, {value}"
        else:
            result[name] = value
    return result


def redact_json(value: _JSON, sensitive_fields: Collection[str] = ()) -> _JSON:
    """``value`` with the values of sensitive names replaced by ``"[REDACTED]"``.

    Walks mappings, lists and tuples at any depth; the rules are the module docstring's (an
    exact name loses its whole value, a generic one its credential strings). The input is never
    modified; parts without secrets are shared with it rather than copied.
    """
    return _redact(value, _sensitive_set(sensitive_fields))


_LEAVES = (str, int, float, bool, type(None))
# A credential, as the weak rules and text pairs want it: no whitespace (after an optional
# scheme), and letters with digits from 8 characters, or anything from 20.
_CREDENTIAL = re.compile(
    r"(?:(?i:bearer|basic|token)[ \t]+)?(?:(?=\S*?\d)(?=\S*?[A-Za-z])\S{8,}|\S{20,})"
)


def _looks_like_credential(value: str) -> bool:
    return _CREDENTIAL.fullmatch(value) is not None


def _redact(value: _JSON, sensitive: SensitiveNames) -> _JSON:
    # ``type() is dict`` first: parsed JSON is plain dicts, and the ABC check costs more.
    if type(value) is dict or isinstance(value, Mapping):
        changed: dict[Any, Any] | None = None
        verdicts = sensitive._verdicts.get
        for name, item in value.items():
            verdict = verdicts(name) if isinstance(name, str) else _NOT
            if verdict is None:
                verdict = sensitive.verdict(name)
            if verdict == _EXACT:
                if isinstance(item, str):
                    if sensitive.allows(item):
                        continue
                    remember_secret(item)
                new_item: Any = REDACTED
            elif verdict:
                new_item = _redact_generic(item, verdict, sensitive)
                if new_item is item:
                    continue
            elif type(item) in _LEAVES:
                continue
            else:
                new_item = _redact(item, sensitive)
                if new_item is item:
                    continue
            if changed is None:
                changed = dict(value)
            changed[name] = new_item
        return value if changed is None else changed
    if isinstance(value, list | tuple):
        out: list[Any] | None = None
        for index, item in enumerate(value):
            if type(item) in _LEAVES:
                continue
            new_item = _redact(item, sensitive)
            if new_item is not item:
                if out is None:
                    out = list(value)
                out[index] = new_item
        if out is None:
            return value
        return out if isinstance(value, list) else tuple(out)
    return value


def _redact_generic(item: Any, verdict: int, sensitive: SensitiveNames) -> Any:
    """A value under a generic (strong or weak) name: its credential strings replaced, lists of
    them too, mappings walked by their own names, everything else kept."""
    if isinstance(item, str):
        if (
            item
            and item != REDACTED
            and (verdict == _STRONG or _looks_like_credential(item))
            and not sensitive.allows(item)
        ):
            remember_secret(item)
            return REDACTED
        return item
    if isinstance(item, list | tuple):
        out = [_redact_generic(element, verdict, sensitive) for element in item]
        if all(new is old for new, old in zip(out, item, strict=True)):
            return item
        return out if isinstance(item, list) else tuple(out)
    if isinstance(item, Mapping):
        return _redact(item, sensitive)
    return item


#: Credential header names, as they appear on the wire.
SENSITIVE_HEADERS = frozenset(name.replace("_", "-") for name in _BUILTIN_NAMES)


def encode_redacted(value: Any, sensitive: Collection[str] | None = None) -> bytes:
    """JSON bytes of ``value``, secrets redacted (``sensitive`` from :func:`sensitive_names`).

    Values under sensitive names are redacted, and the bytes are scrubbed of remembered secrets,
    key shapes and credential pairs in text (:func:`scrub_rendered`). The common case — no
    sensitive-looking name in the bytes — costs one scan of the rendered bytes instead of a walk.
    """
    names = _sensitive_set(sensitive)
    data = encode(value)
    if _may_name_a_secret(data, names):
        data = encode(_redact(decode(data), names))
    return scrub_rendered(data, names)


def _may_name_a_secret(data: bytes, sensitive: SensitiveNames) -> bool:
    # Every sensitive name holds one of the fragments (configured ones are fragments of their
    # own); the bytes are lower-cased, which can only make the test say "maybe" more often. A
    # non-ASCII name cannot be matched on bytes: always walk.
    lowered = data.lower().replace(b"-", b"_")
    return any(not name.isascii() or name.encode() in lowered for name in sensitive.fragments)


# --------------------------------------------------------------------------------------------
# Secret values seen, scrubbed wherever they turn up
# --------------------------------------------------------------------------------------------
#
# Redacting by name cannot catch a key that reappears in an error message, a traceback, a log
# line or a URL. So every value redacted by name is remembered, and every text workbench writes
# is scrubbed of the values remembered so far.

_MIN_SECRET = 8  # shorter values would scrub ordinary words
_known: frozenset[bytes] = frozenset()
_known_text: frozenset[str] = frozenset()
_known_in_json: frozenset[bytes] = frozenset()
_known_lock = threading.Lock()
# The values ``remember_secret`` has taken in (whether or not they were long enough to keep):
# a value seen again costs one set lookup. Only a cache, so bounded: past it, values are
# judged again each time, with the same outcome.
_remembered: set[str] = set()
_REMEMBERED_MAX = 4096


def remember_secret(value: str) -> None:
    """Scrub ``value`` (and, for ``Bearer x``, ``x``) from everything recorded from now on."""
    global _known, _known_text, _known_in_json
    if not isinstance(value, str) or value in _remembered:
        return  # seen: the same credential header goes with every request of a client
    candidates = {value.strip()}
    scheme, _, credential = value.strip().partition(" ")
    if credential and scheme.lower() in ("bearer", "basic", "token"):
        candidates.add(credential.strip())
    # A credential has letters; a run of digits would scrub ordinary numbers.
    new = {
        c for c in candidates if len(c) >= _MIN_SECRET and not c.isdigit() and c != REDACTED
    } - _known_text
    if new:
        encoded = {secret.encode() for secret in new}
        # As they appear inside JSON strings too (quotes, backslashes, control characters
        # escaped), so that scrub_json finds them in rendered bytes.
        in_json = {encode(secret)[1:-1] for secret in new}
        with _known_lock:
            _known = _known | encoded
            _known_text = _known_text | new
            _known_in_json = _known_in_json | encoded | in_json
    if len(_remembered) < _REMEMBERED_MAX:
        _remembered.add(value)


def has_known_secrets() -> bool:
    return bool(_known_in_json)


def forget_secrets() -> None:
    """Forget every remembered secret value (for tests that need a clean slate)."""
    global _known, _known_text, _known_in_json
    with _known_lock:
        _known = _known_in_json = frozenset()
        _known_text = frozenset()
        _remembered.clear()


#: What POSIX shells export as the working directories: ``pwd`` names a password in a body or
#: a query, but remembering these would scrub every path under the working directory.
_SHELL_DIRECTORIES = frozenset({"PWD", "OLDPWD"})


def remember_environment() -> None:
    """Remember the values of the environment's credentials (by the name rules: ``*_API_KEY``,
    ``*_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``*PASSWORD``, ...)."""
    # API keys handed to SDKs through the environment may show up in errors before any request
    # carrying them has been redacted by name.
    for name, value in os.environ.items():
        if name in _SHELL_DIRECTORIES:
            continue
        verdict = _BUILTIN.verdict(name)
        if verdict >= _STRONG or (verdict == _WEAK and _looks_like_credential(value)):
            remember_secret(value)


# --------------------------------------------------------------------------------------------
# Scrubbing text: remembered values, key shapes, credential pairs
# --------------------------------------------------------------------------------------------

# Each well-known key format: a literal head to find it by, how far before the head the shape
# starts, and the whole shape from there.
_SHAPES: tuple[tuple[str, int, re.Pattern[str]], ...] = tuple(
    (head, back, re.compile(pattern))
    for head, back, pattern in (
        ("sk-", 0, r"sk-[A-Za-z0-9][A-Za-z0-9_\-]{15,}"),
        ("AKIA", 0, r"AKIA[0-9A-Z]{16}(?![0-9A-Za-z])"),
        ("ASIA", 0, r"ASIA[0-9A-Z]{16}(?![0-9A-Za-z])"),
        ("ghp_", 0, r"ghp_[A-Za-z0-9]{20,}"),
        ("gho_", 0, r"gho_[A-Za-z0-9]{20,}"),
        ("ghu_", 0, r"ghu_[A-Za-z0-9]{20,}"),
        ("ghs_", 0, r"ghs_[A-Za-z0-9]{20,}"),
        ("ghr_", 0, r"ghr_[A-Za-z0-9]{20,}"),
        ("github_pat_", 0, r"github_pat_[A-Za-z0-9_]{20,}"),
        ("glpat-", 0, r"glpat-[A-Za-z0-9_\-]{20,}"),
        ("xox", 0, r"xox[abposr]-[A-Za-z0-9\-]{10,}"),
        ("AIza", 0, r"AIza[0-9A-Za-z_\-]{35}"),
        ("k_live_", 1, r"[rs]k_live_[0-9A-Za-z]{16,}"),
        ("k_test_", 1, r"[rs]k_test_[0-9A-Za-z]{16,}"),
        ("hf_", 0, r"hf_[A-Za-z0-9]{30,}"),
        ("eyJ", 0, r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),
        (
            "-----BEGIN",
            0,
            r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY-----[A-Za-z0-9+/=\s\\]{0,20000}?"
            r"-----END[A-Z ]{0,30}PRIVATE KEY-----",
        ),
    )
)
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.")
_NAME_TAIL = re.compile(r"[a-z0-9_.]*")
_BARE_VALUE = re.compile(r"(?:(?i:bearer|basic|token)[ \t]+)?[^\s,;&\"'<>(){}\[\]]+")
_BEARER = re.compile(r"(?i:bearer)[ \t]+(?=[A-Za-z0-9._~+/\-]*\d)([A-Za-z0-9._~+/\-]{12,}=*)")
_BASIC = re.compile(r"(?i:basic)[ \t]+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])")
_USERINFO = re.compile(r"[^\s/:@\"'<>\\]{0,256}:([^\s/@\"'<>\\]{1,256})@")


def _lowered(text: str) -> str:
    """``text`` lower-cased with ``-`` as ``_``, of the same length (positions line up)."""
    low = text.lower()
    if len(low) != len(text):  # a character whose lower case is longer: ASCII only, then
        low = text.translate(_ASCII_LOWER)
    return low.replace("-", "_")


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclasses.dataclass(frozen=True, slots=True)
class _Probe:
    """What a text (or a whole JSON document) may hold, found with a few fast substring
    searches; the scan of each of its strings then looks only for these."""

    shapes: tuple[tuple[str, int, re.Pattern[str]], ...]
    fragments: tuple[str, ...]
    bearer: bool
    basic: bool
    userinfo: bool

    def __bool__(self) -> bool:
        return bool(self.shapes or self.fragments or self.bearer or self.basic or self.userinfo)


def _probe(text: str, names: SensitiveNames) -> _Probe:
    shapes = tuple(shape for shape in _SHAPES if shape[0] in text)
    pairs = "=" in text or ":" in text
    schemes = any(word in text for word in ("earer", "EARER", "asic", "ASIC"))
    fragments: tuple[str, ...] = ()
    bearer = basic = False
    if pairs or schemes:
        low = _lowered(text)
        if pairs:
            fragments = tuple(fragment for fragment in names.fragments if fragment in low)
        if schemes:
            bearer, basic = "bearer" in low, "basic" in low
    return _Probe(shapes, fragments, bearer, basic, "://" in text)


def _spans(text: str, names: SensitiveNames, probe: _Probe) -> list[tuple[int, int]]:
    """Where the secrets in ``text`` are: ``(start, end)`` of each value to replace."""
    spans: list[tuple[int, int]] = []
    for head, back, pattern in probe.shapes:
        at = text.find(head)
        while at >= 0:
            start = at - back
            if start >= 0 and (start == 0 or text[start - 1] not in _WORD_CHARS):
                match = pattern.match(text, start)
                if match is not None and not names.allows(match.group()):
                    spans.append((start, match.end()))
            at = text.find(head, at + 1)
    pairs = bool(probe.fragments) and ("=" in text or ":" in text)
    schemes = (probe.bearer or probe.basic) and (" " in text or "\t" in text)
    low = _lowered(text) if pairs or schemes else ""
    if pairs:
        for fragment in probe.fragments:
            at = low.find(fragment)
            while at >= 0:
                found = _pair_at(text, low, at, len(fragment), names)
                if found is not None:
                    spans.append(found)
                at = low.find(fragment, found[1] if found else at + len(fragment))
    for wanted, pattern, head in (
        (probe.bearer, _BEARER, "bearer"),
        (probe.basic, _BASIC, "basic"),
    ):
        if not (wanted and schemes):
            continue
        at = low.find(head)
        while at >= 0:
            if at == 0 or not low[at - 1].isalnum():
                match = pattern.match(text, at)
                if match is not None and _credential_after_scheme(head, match.group(1), names):
                    spans.append(match.span(1))
            at = low.find(head, at + 1)
    if probe.userinfo:
        at = text.find("://")
        while at >= 0:
            match = _USERINFO.match(text, at + 3)
            if match is not None and not names.allows(match.group(1)):
                spans.append(match.span(1))
            at = text.find("://", at + 3)
    return spans


def _credential_after_scheme(scheme: str, credential: str, names: SensitiveNames) -> bool:
    if names.allows(credential):
        return False
    if scheme == "bearer":
        return True
    try:  # Basic: base64 of user:password, not a word after "basic"
        return b":" in base64.b64decode(credential + "=" * (-len(credential) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False


def _pair_at(
    text: str,
    low: str,
    at: int,
    length: int,
    names: SensitiveNames,
    *,
    only_query: bool = False,
) -> tuple[int, int] | None:
    """Where the value of a ``name=value`` / ``name: value`` pair is, when its name holds the
    fragment at ``at``, the name is sensitive and the value a secret; else ``None``.
    ``only_query``: only a URL query's ``?name=value`` (or ``&``, ``;``) counts."""
    start = at
    while start and low[start - 1] in _NAME_CHARS:
        start -= 1
    end = _NAME_TAIL.match(low, at + length).end()  # type: ignore[union-attr]
    n = len(text)
    quote = text[start - 1] if start and text[start - 1] in "\"'" else ""
    j = end
    if quote and text.startswith(quote, j):
        j += 1
    else:
        quote = ""
    while j < n and text[j] in " \t":
        j += 1
    if j >= n or text[j] not in ":=":
        return None
    sign = text[j]
    j += 1
    if text.startswith((":", "//", "="), j):  # "a::b", "https://", "=="
        return None
    while j < n and text[j] in " \t":
        j += 1
    lead = start - 1 - (1 if quote else 0)
    query = sign == "=" and lead >= 0 and text[lead] in "?&;"
    if only_query and not query:
        return None
    name = low[start:end].strip(".")
    verdict = names.query_verdict(name) if query else names.verdict(name)
    if not verdict:
        return None
    if j < n and text[j] in "\"'":
        close = text.find(text[j], j + 1)
        if close < 0:
            return None
        value_start, value_end, quoted = j + 1, close, True
    else:
        match = _BARE_VALUE.match(text, j)
        if match is None:
            return None
        value_start, value_end, quoted = j, match.end(), False
    value = text[value_start:value_end]
    if not value or value == REDACTED or names.allows(value):
        return None
    explicit = quoted or sign == "="
    if not query and (verdict == _WEAK or not explicit) and not _looks_like_credential(value):
        return None
    remember_secret(value)
    return value_start, value_end


def _replaced(text: str, spans: list[tuple[int, int]]) -> str:
    spans.sort()
    parts: list[str] = []
    last = 0
    for start, end in spans:
        if start < last:  # overlapping finds: the first one already covers it
            continue
        parts.append(text[last:start])
        parts.append(REDACTED)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _scrub_known(text: str) -> str:
    for secret in _known_text:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub_text(text: str, sensitive: Collection[str] | None = None) -> str:
    """``text`` scrubbed of remembered secrets, key shapes, credentials in URLs (query and
    ``user:password@``) and the values of sensitive ``name=value`` / ``name: value`` pairs.

    ``sensitive`` (from :func:`sensitive_names`) adds configured names and the allow-list.
    """
    names = _sensitive_set(sensitive)
    if _known_text:
        text = _scrub_known(text)
    if not _may_hold_secrets(text.lower(), names):
        return text
    probe = _probe(text, names)
    if not probe:
        return text
    spans = _spans(text, names, probe)
    return _replaced(text, spans) if spans else text


# One search of the lower-cased text for anything the scans below look for (a key shape's
# head, a scheme, a URL, a fragment of a sensitive name): most texts hold none of them.
_MAYBE = "|".join(
    re.escape(word)
    for word in dict.fromkeys(
        (*(head.lower() for head, _, _ in _SHAPES), "://", "bearer", "basic", *_FRAGMENTS)
    )
)
_MAYBE_TEXT = re.compile(_MAYBE)
_MAYBE_BYTES = re.compile(_MAYBE.encode())


def _may_hold_secrets(low: Any, names: SensitiveNames) -> bool:
    """Whether lower-cased text (``str`` or ``bytes``) may hold anything to scrub."""
    if isinstance(low, bytes):
        if _MAYBE_BYTES.search(low) is not None:
            return True
        return any(f.encode() in low for f in names.fragments[len(_FRAGMENTS) :])
    if _MAYBE_TEXT.search(low) is not None:
        return True
    return any(fragment in low for fragment in names.fragments[len(_FRAGMENTS) :])


def scrub_rendered(data: bytes, sensitive: Collection[str] | None = None) -> bytes:
    """JSON bytes with every string scrubbed as :func:`scrub_text` does.

    Only strings are touched, so the result stays valid JSON whatever a secret looks like. The
    common case — nothing that could be a secret — costs a few substring searches.
    """
    names = _sensitive_set(sensitive)
    known = _known_in_json
    has_known = bool(known) and any(secret in data for secret in known)
    if not has_known and not _may_hold_secrets(data.lower(), names):
        return data
    probe = _probe(data.decode("utf-8", errors="replace"), names)
    if not has_known and not probe:
        return data
    return encode(_scrub_strings(decode(data), lambda s: _scrub_probed(s, names, probe)))


def _scrub_probed(text: str, names: SensitiveNames, probe: _Probe) -> str:
    if _known_text:
        text = _scrub_known(text)
    if not probe:
        return text
    spans = _spans(text, names, probe)
    return _replaced(text, spans) if spans else text


def scrub_output(value: _JSON, sensitive: Collection[str] | None = None) -> _JSON:
    """A JSON-able value as an output writes it: redacted by name and scrubbed like the store.

    For the CLI's ``--json``, webhook payloads, OTLP attributes, HTML views and log fields:
    what comes back reads as :func:`workbench._json.to_jsonable` of the value.
    """
    return decode(encode_redacted(value, sensitive))


def scrub_derived(record: _T | None, sensitive: Collection[str] | None = None) -> _T | None:
    """A dataclass read from a recorded body (``CallFacts``: the answer text, the model, the
    finish reason, ...) with every string field scrubbed as :func:`scrub_text` does, so that
    nothing derived from a body keeps what the body's scrubbing took out."""
    if record is None or not dataclasses.is_dataclass(record):
        return record
    changes = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, str) and value:
            scrubbed = scrub_text(value, sensitive)
            if scrubbed is not value and scrubbed != value:
                changes[field.name] = scrubbed
    return dataclasses.replace(record, **changes) if changes else record  # type: ignore[type-var]


def _scrub_strings(value: Any, scrub: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            scrub(k) if isinstance(k, str) else k: _scrub_strings(v, scrub)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_strings(item, scrub) for item in value]
    return value


# -- the light scrub of hot paths -----------------------------------------------------------


def scrub_json(data: bytes) -> bytes:
    """JSON bytes with remembered secrets and URL-query credentials scrubbed from its strings.

    The light scrub for the recorder's hot paths: a few substring searches when there is
    nothing to find. :func:`scrub_rendered` is the full one (key shapes, pairs in text).
    """
    known = _known_in_json
    if not (known and any(secret in data for secret in known)) and not (
        b"=" in data and _query_spans(data.decode(errors="replace"))
    ):
        return data
    return encode(_scrub_strings(decode(data), _scrub_light))


def _query_spans(text: str) -> list[tuple[int, int]]:
    """Where the credentials of URL queries in ``text`` are (``?token=...``, ``&sig=...``)."""
    if "?" not in text and "&" not in text and ";" not in text:
        return []
    low = _lowered(text)
    spans: list[tuple[int, int]] = []
    for fragment in _FRAGMENTS:
        at = low.find(fragment)
        while at >= 0:
            found = _pair_at(text, low, at, len(fragment), _BUILTIN, only_query=True)
            if found is not None:
                spans.append(found)
            at = low.find(fragment, found[1] if found else at + len(fragment))
    return spans


def _scrub_light(text: str) -> str:
    if _known_text:
        text = _scrub_known(text)
    if "=" in text:
        spans = _query_spans(text)
        if spans:
            text = _replaced(text, spans)
    return text


# --------------------------------------------------------------------------------------------
# Scrubbing bytes as received
# --------------------------------------------------------------------------------------------


def scrub_bytes(data: bytes) -> bytes:
    """Raw bytes (a response body as received) with every remembered secret replaced."""
    for secret in _known:
        if secret in data:
            data = data.replace(secret, _REDACTED_BYTES)
    return data


_REDACTED_BYTES = REDACTED.encode()


def scrub_chunks(
    chunks: Sequence[tuple[float, bytes]], sensitive: Collection[str] | None = None
) -> list[tuple[float, bytes]]:
    """A response's chunks (``(offset_s, bytes)`` as received) with remembered secrets and key
    shapes replaced, cut where they were: a secret that spans two chunks is replaced in the
    chunk where it starts, so the chunks still add up to the scrubbed body.

    Shapes never hold quotes or backslashes, so JSON and SSE bodies stay well-formed.
    """
    names = _sensitive_set(sensitive)
    body = b"".join(data for _, data in chunks)
    # latin-1 maps each byte to one character: positions in the text are positions in bytes.
    text = body.decode("latin-1")
    spans: list[tuple[int, int]] = []
    for secret in _known:
        at = body.find(secret)
        while at >= 0:
            spans.append((at, at + len(secret)))
            at = body.find(secret, at + len(secret))
    shapes = tuple(shape for shape in _SHAPES if shape[0] in text)
    if shapes:
        spans.extend(_spans(text, names, _Probe(shapes, (), False, False, False)))
    if not spans:
        return list(chunks)
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            continue
        merged.append((start, end))
    out: list[tuple[float, bytes]] = []
    position = skip_until = 0
    pending = iter(merged)
    span = next(pending, None)
    for offset, data in chunks:
        chunk_end = position + len(data)
        cursor = max(position, skip_until)
        parts: list[bytes] = []
        while span is not None and span[0] < chunk_end:
            start, end = span
            parts.append(body[cursor:start])
            parts.append(_REDACTED_BYTES)
            cursor = skip_until = end
            span = next(pending, None)
        if cursor < chunk_end:
            parts.append(body[cursor:chunk_end])
        out.append((offset, b"".join(parts)))
        position = chunk_end
    return out


remember_environment()
