"""What scrubbing a 10 KB log line costs, against a gitleaks-style single regex and a plain
``re.sub`` of one key pattern.

What, in one run, on three 10 KB lines (each built once, the same for every variant):

* ``plain`` - prose with numbers and no word scrubbing looks for: the common case, where
  ``scrub_text`` answers after one search of the lower-cased line;
* ``near misses`` - no secret, but words and shapes that make scrubbing look closer
  (``input_tokens=``, ``author``, ``https://...?q=``): every pair and URL is examined;
* ``few secrets`` - the plain line with four secrets planted (an ``sk-proj-`` key, an ``AKIA``
  key, a ``ghp_`` token, ``password=...``); every one must come out ``[REDACTED]``.

One secret value is remembered (as ``OPENAI_API_KEY`` in the environment makes it), so each
call also searches for it. Ours is ``workbench.redaction.scrub_text`` (the text log format and
every string the store writes) and ``scrub_rendered`` on the line's JSON record (the JSON log
file's path). The peer is one compiled alternation of gitleaks-like rules (generic
``name = value`` for key/secret/token/password/auth, ``sk-``, ``AKIA``, ``gh?_``, JWTs,
``user:pass@`` in URLs) run with ``re.sub``; for context, a ``re.sub`` of the single ``sk-``
pattern, the least any scrubbing can cost. The peers do less: no remembered values, no
allow-list, no configured names, no URL query names, no ``Bearer``/``Basic`` schemes.

Variants alternate inside each round and rounds repeat; the table shows medians of the
per-call time, in microseconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import _common
import orjson
from _common import Row, fmt, median, rotated

from workbench.redaction import forget_secrets, remember_secret, scrub_rendered, scrub_text

__all__ = ["main"]

LINE_BYTES = 10 * 1024
KINDS = ("plain", "near misses", "few secrets")
VARIANTS = ("scrub_text", "scrub_rendered", "gitleaks-style", "one re.sub")

_PLAIN = (
    "step web_search finished: 12 results for query 'llm evaluation' in 1.2 s; cache hit "
    "ratio 0.83, queue depth 4, worker 7 of 16, retries 0, answer length 2,311 chars. "
)
_NEAR = (
    "model call done: input_tokens=512 output_tokens=128 author: Ada Lovelace, source "
    "https://api.example.com/v1/search?q=llm+evaluation&page=2 status=200 in 0.84 s. "
)
REMEMBERED = "sk-remembered-0123456789abcdefghij"
SECRETS = (
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "hunter2-correct-horse",
)

#: gitleaks-like rules in one alternation (gitleaks runs each rule's regex; one pass is kinder).
GITLEAKS_STYLE = re.compile(
    r"(?i:(?:api[_-]?key|secret|token|passw(?:or)?d|auth)[\w.-]{0,20}\s*[:=]\s*['\"]?)"
    r"[^\s'\",;&]{8,}"
    r"|sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    r"|://[^\s/:@]+:[^\s/@]+@"
)
ONE_KEY = re.compile(r"sk-[A-Za-z0-9_-]{20,}")


def _filled(sentence: str) -> str:
    return (sentence * (LINE_BYTES // len(sentence) + 1))[:LINE_BYTES]


def lines() -> dict[str, str]:
    """The three 10 KB lines, by kind."""
    plain = _filled(_PLAIN)
    quarter = LINE_BYTES // 4
    planted = [
        f"api_key={SECRETS[0]} ",
        f"aws {SECRETS[1]} ",
        f"token: {SECRETS[2]} ",
        f"password={SECRETS[3]} ",
    ]
    secret_line = "".join(
        plain[i * quarter : (i + 1) * quarter - len(planted[i])] + planted[i] for i in range(4)
    )
    return {"plain": plain, "near misses": _filled(_NEAR), "few secrets": secret_line}


def _work(variant: str, line: str) -> Callable[[], object]:
    if variant == "scrub_text":
        return lambda: scrub_text(line)
    if variant == "scrub_rendered":
        record = orjson.dumps({"level": "INFO", "logger": "app", "message": line})
        return lambda: scrub_rendered(record)
    if variant == "gitleaks-style":
        return lambda: GITLEAKS_STYLE.sub("[REDACTED]", line)
    return lambda: ONE_KEY.sub("[REDACTED]", line)


def per_call_us(work: Callable[[], object], n: int) -> float:
    begun = time.perf_counter()
    for _ in range(n):
        work()
    return (time.perf_counter() - begun) / n * 1e6


def check(texts: dict[str, str]) -> None:
    """Ours takes every planted secret out and leaves the clean lines as they are."""
    scrubbed = scrub_text(texts["few secrets"])
    kept = [secret for secret in SECRETS if secret in scrubbed]
    if kept:
        raise AssertionError(f"scrub_text kept {kept}")
    rendered = scrub_rendered(orjson.dumps({"message": texts["few secrets"]})).decode()
    if any(secret in rendered for secret in SECRETS):
        raise AssertionError("scrub_rendered kept a planted secret")
    for kind in ("plain", "near misses"):
        if scrub_text(texts[kind]) != texts[kind]:
            raise AssertionError(f"scrub_text changed the {kind} line")
    missed = [s for s in SECRETS if s in GITLEAKS_STYLE.sub("[REDACTED]", texts["few secrets"])]
    print(f"  planted {len(SECRETS)} secrets; ours keeps 0, gitleaks-style keeps {len(missed)}")


def main(quick: bool = False) -> list[Row]:
    n, rounds = (200, 3) if quick else (1_000, 7)
    remember_secret(REMEMBERED)
    try:
        texts = lines()
        check(texts)
        times: dict[tuple[str, str], list[float]] = {
            (kind, variant): [] for kind in KINDS for variant in VARIANTS
        }
        for kind in KINDS:
            for variant in VARIANTS:
                per_call_us(_work(variant, texts[kind]), 20)  # warm-up: regex caches
        for index in range(rounds):
            for kind in KINDS:
                for variant in rotated(VARIANTS, index):
                    times[kind, variant].append(per_call_us(_work(variant, texts[kind]), n))
    finally:
        forget_secrets()

    rows: list[Row] = []
    for kind in KINDS:
        peer = median(times[kind, "gitleaks-style"])
        floor = median(times[kind, "one re.sub"])
        print(f"  {kind}: one re.sub of the sk- pattern {floor:.1f} us", flush=True)
        for variant in ("scrub_text", "scrub_rendered"):
            ours = median(times[kind, variant])
            rows.append(
                Row(
                    "scrub",
                    f"{variant} of a 10 KB log line, {kind} (peer: gitleaks-style regex; "
                    f"one re.sub {floor:.1f} us)",
                    fmt(ours, 1, " us"),
                    fmt(peer, 1, " us"),
                    f"{ours / peer:.2f}x",
                    "-",
                    None,
                )
            )
    return rows


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
