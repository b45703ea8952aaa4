"""What counts as a secret *name*: the rules, the allow-list, and :class:`SensitiveNames`.

The name half of ``workbench.redaction`` (read its docstring for the rules in words); kept apart
so that each stays readable in one sitting. Owns the word lists and how a name is judged; does
not walk values or scan text — ``workbench.redaction`` does, with what this module decides.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any, Protocol

__all__ = ["SensitiveNames", "sensitive_names", "sensitive_names_for"]

# Names are compared after lower-casing and turning "-" into "_", so that ``X-Api-Key``,
# ``x_api_key`` and ``X-API-KEY`` are one name.
_BUILTIN_NAMES = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "x_api_key",
        "api_key",
        "apikey",
        "cookie",
        "set_cookie",
        "x_goog_api_key",
        "access_token",
        "refresh_token",
        "client_secret",
        "secret",
        "password",
    }
)

# How sensitive a name is (see the module docstring).
_NOT, _WEAK, _STRONG, _EXACT = 0, 1, 2, 3


def _normalise_name(name: str) -> str:
    return name.lower().replace("-", "_")


# -- the name rules --------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD_BREAKS = re.compile(r"[_.:/\[\]\s]+")
_STRONG_WORDS = frozenset(
    {"pwd", "creds", "sig", "auth", "oauth", "bearer", "jwt", "cookie", "cookies"}
    | {"authorization", "authorisation"}
)
_STRONG_INSIDE = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "credential",
    "signature",
    "apikey",
    "privatekey",
)
# A last word that names something *about* a secret, not the secret: ``token_count``.
_DESCRIBING = _words(
    """
    id ids type types kind mode method methods scheme name names count counts num number
    length len size limit limits total usage estimated budget url uri urls endpoint host path
    paths file files dir sock socket format version prefix suffix hint enabled disabled
    required expires expiry expiration ttl env var field fields location provider policy
    rotation domain header param logprob logprobs index
    """
)
# A word that makes ``key`` or ``token`` an ordinary one: ``request_key``, ``eos_token``.
_ORDINARY = _words(
    """
    request cache sort primary foreign partition idempotency dedup dedupe object row lookup
    hash map dict item join unique shard group public pub event message record step state span
    metric label column table prompt template memory order dataset example replay page next
    prev previous continuation pagination cursor sync eos bos pad unk sep cls mask stop
    special start end max min input output completion cached reasoning thinking audio text
    image hot
    """
)
# Who may own a fused ``...key`` (``openaiKey``, ``accessKey``): ``monkey`` is not a key.
_KEY_OWNERS = _words(
    """
    api xapi access secret private client session service account signing master license
    subscription app consumer encryption ssh hmac webhook shared openai anthropic google
    gemini aws azure cohere mistral groq hf stripe
    """
)


def _name_rule(name: str, *, query: bool) -> int:
    """How sensitive a normalised name is by the generic rules alone."""
    words = [word for word in _WORD_BREAKS.split(name) if word]
    if not words or (len(words) > 1 and words[-1] in _DESCRIBING):
        return _NOT
    ordinary = weak = False
    for word in words:
        if word in _STRONG_WORDS or any(part in word for part in _STRONG_INSIDE):
            return _STRONG
        if word in _ORDINARY:
            ordinary = True
        elif word in ("token", "key"):
            weak = True
        elif word.endswith("token"):
            weak = word[:-5] not in _ORDINARY or weak
        elif word.endswith("key") and word[:-3] in _KEY_OWNERS:
            weak = True
    if not weak or ordinary or (words == ["key"] and not query):
        return _NOT
    return _STRONG if "key" in words and ("api" in words or "private" in words) else _WEAK


# Words whose presence in a text may mean a ``name=value`` pair to look at.
_FRAGMENTS = ("key", "token", "secret", "passw", "passphrase", "pwd", "cred", "sig", "auth")
_FRAGMENTS += ("cookie", "bearer", "jwt")
_CACHE_SIZE = 4096


class SensitiveNames(frozenset[str]):
    """The secret names of one configuration: ``name in names`` says whether to redact.

    Its members are the *exact* names (built-in and ``capture.sensitive_fields``, normalised);
    membership also applies the generic rules and the allow-list of the module docstring.
    :meth:`verdict` says how sensitive a name is; :meth:`allows` whether a value is
    allow-listed. Build one with :func:`sensitive_names` or :func:`sensitive_names_for`.
    """

    allowed: frozenset[str]
    allowed_values: tuple[str, ...]

    def __new__(
        cls,
        names: Iterable[str] = (),
        *,
        allowed_fields: Iterable[str] = (),
        allowed_values: Iterable[str] = (),
    ) -> SensitiveNames:
        configured = {_normalise_name(name) for name in names}
        allowed = frozenset(_normalise_name(name) for name in allowed_fields) - configured
        self = super().__new__(cls, (_BUILTIN_NAMES - allowed) | configured)
        self.allowed = allowed
        self.allowed_values = tuple(allowed_values)
        self._allowed_values = (
            re.compile("|".join(f"(?:{pattern})" for pattern in self.allowed_values))
            if self.allowed_values
            else None
        )
        self._verdicts: dict[str, int] = {}
        self._query_verdicts: dict[str, int] = {}
        self._unions: dict[frozenset[str], SensitiveNames] = {}
        extra = sorted({name for name in configured if not any(f in name for f in _FRAGMENTS)})
        self.fragments: tuple[str, ...] = _FRAGMENTS + tuple(extra)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        configured = frozenset(self) - _BUILTIN_NAMES
        return (
            _rebuild,
            (sorted(configured), sorted(self.allowed), self.allowed_values),
        )

    def verdict(self, name: str) -> int:
        """0 (not sensitive), 1 (weak), 2 (strong) or 3 (exact) for ``name`` as spelt."""
        found = self._verdicts.get(name)
        if found is None:
            found = self._judge(name, query=False)
            if len(self._verdicts) < _CACHE_SIZE:
                self._verdicts[name] = found
        return found

    def query_verdict(self, name: str) -> int:
        """:meth:`verdict` for a URL query or form field, where a bare ``key`` is a credential."""
        found = self._query_verdicts.get(name)
        if found is None:
            found = self._judge(name, query=True)
            if len(self._query_verdicts) < _CACHE_SIZE:
                self._query_verdicts[name] = found
        return found

    def _judge(self, name: str, *, query: bool) -> int:
        normal = _normalise_name(name)
        if frozenset.__contains__(self, normal):
            return _EXACT
        if normal in self.allowed:
            return _NOT
        return _name_rule(normal, query=query)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.verdict(name) > _NOT

    def __or__(self, other: Any) -> SensitiveNames:
        names = frozenset(other)
        found = self._unions.get(names)
        if found is None:
            found = SensitiveNames(
                frozenset(self) | names,
                allowed_fields=self.allowed,
                allowed_values=self.allowed_values,
            )
            if len(self._unions) < 64:
                self._unions[names] = found
        return found

    def allows(self, value: str) -> bool:
        """Whether ``value`` matches one of the allow-listed value patterns in full."""
        return (
            self._allowed_values is not None and self._allowed_values.fullmatch(value) is not None
        )


def _rebuild(configured: list[str], allowed: list[str], values: tuple[str, ...]) -> SensitiveNames:
    return SensitiveNames(configured, allowed_fields=allowed, allowed_values=values)


_BUILTIN = SensitiveNames()
# The capture layer passes the same configured names with every call: build their set once.
_sensitive_sets: dict[Any, SensitiveNames] = {}


def _sensitive_set(extra: Collection[str] | None) -> SensitiveNames:
    if isinstance(extra, SensitiveNames):
        return extra
    if not extra:
        return _BUILTIN
    names = extra if isinstance(extra, frozenset) else frozenset(extra)
    found = _sensitive_sets.get(names)
    if found is None:
        found = SensitiveNames(names)
        if len(_sensitive_sets) < 64:
            _sensitive_sets[names] = found
    return found


def sensitive_names(
    configured: Collection[str] = (),
    *,
    allowed_fields: Collection[str] = (),
    allowed_values: Collection[str] = (),
) -> SensitiveNames:
    """The built-in secret names plus ``configured``, with the allow-list; see the module
    docstring for the rules ``name in sensitive_names(...)`` applies."""
    if not allowed_fields and not allowed_values:
        return _sensitive_set(frozenset(configured))
    key = (frozenset(configured), frozenset(allowed_fields), tuple(allowed_values))
    found = _sensitive_sets.get(key)
    if found is None:
        found = SensitiveNames(
            configured, allowed_fields=allowed_fields, allowed_values=allowed_values
        )
        if len(_sensitive_sets) < 64:
            _sensitive_sets[key] = found
    return found


class _Allowlist(Protocol):
    fields: list[str]
    values: list[str]


class _Capture(Protocol):
    sensitive_fields: list[str]
    allowlist: _Allowlist


class _Config(Protocol):
    capture: _Capture


def sensitive_names_for(config: _Config | _Capture | None = None) -> SensitiveNames:
    """The names of a configuration's ``capture`` section (of ``load_config()`` when ``None``):
    ``sensitive_fields`` and ``allowlist``. What an output that is not inside a run uses."""
    if config is None:
        from workbench.config import load_config

        config = load_config()
    capture: _Capture = config.capture if hasattr(config, "capture") else config  # type: ignore[assignment]
    return sensitive_names(
        capture.sensitive_fields,
        allowed_fields=capture.allowlist.fields,
        allowed_values=capture.allowlist.values,
    )
