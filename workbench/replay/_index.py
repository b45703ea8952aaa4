"""The recorded model calls of one execution, indexed for replay.

Owns looking a request up — by ``(request_key, occurrence)`` in a dict, so a replay's cost is
flat in the number of recorded calls (vcrpy scans every interaction per request) — and, when the
lookup misses, finding the *nearest* recorded request and a readable diff of the two, which is
what a user needs to see why a replay diverged. It does not serve answers or touch the network.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from workbench.records import ModelCall
from workbench.store import RecordedResponse

__all__ = ["RecordedCalls", "prompt_text", "request_diff", "request_summary"]

# Bounds on the work of a miss: candidates compared, and characters of each body compared.
# A miss is already an error path, but a recording of 10,000 calls to one endpoint must not
# turn it into minutes of difflib.
_MAX_CANDIDATES = 200
_MAX_COMPARED_CHARS = 4_000
_SUMMARY_CHARS = 80


class RecordedCalls:
    """The answerable calls of one recording: an O(1) lookup and a bounded nearest-match.

    Lookups use the light :class:`~workbench.store.RecordedResponse` of each call; the full
    :class:`ModelCall` records (requests included) are loaded only when a miss needs the
    nearest request or when some recorded calls went unused — a replay that matches
    everything never reads them.
    """

    __slots__ = ("_by_key", "_calls", "_load", "_lock")

    def __init__(
        self,
        responses: Iterable[RecordedResponse],
        load_calls: Callable[[], Iterable[ModelCall]],
    ) -> None:
        self._by_key = {(r.request_key, r.occurrence): r for r in responses}
        self._load = load_calls
        self._calls: list[ModelCall] | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, calls: Iterable[ModelCall]) -> RecordedCalls:
        """An index over full records already in hand (tests, and calls read another way)."""
        kept = list(calls)
        return cls((RecordedResponse.from_model_call(call) for call in kept), lambda: kept)

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, request_key: str, occurrence: int) -> RecordedResponse | None:
        """The recorded answer to the ``occurrence``-th request with this key."""
        return self._by_key.get((request_key, occurrence))

    def keys(self) -> set[tuple[str, int]]:
        return set(self._by_key)

    def calls(self) -> list[ModelCall]:
        """The full recorded calls, in recorded order (loaded once, on first use)."""
        with self._lock:
            if self._calls is None:
                self._calls = list(self._load())
            return self._calls

    def nearest(self, request: Mapping[str, Any]) -> ModelCall | None:
        """The recorded call with the same method and path whose body is most like ``request``'s.

        Ties go to the earliest recorded. ``None`` if no recorded call has the same route.
        """
        route = _route(request)
        candidates = [c for c in self.calls() if _route(c.request) == route][:_MAX_CANDIDATES]
        if not candidates:
            return None
        wanted = _body_text(request)[:_MAX_COMPARED_CHARS]
        best, best_ratio = candidates[0], -1.0
        for candidate in candidates:
            matcher = difflib.SequenceMatcher(
                None, _body_text(candidate.request)[:_MAX_COMPARED_CHARS], wanted, autojunk=False
            )
            # The cheap upper bounds first: most candidates are discarded without a full ratio.
            if matcher.real_quick_ratio() <= best_ratio or matcher.quick_ratio() <= best_ratio:
                continue
            ratio = matcher.ratio()
            if ratio > best_ratio:
                best, best_ratio = candidate, ratio
        return best


def _route(request: Any) -> tuple[str, str]:
    if not isinstance(request, Mapping):
        return ("", "")
    return (str(request.get("method") or ""), str(request.get("path") or ""))


def _body_text(request: Any) -> str:
    """The canonical body as sorted-key, indented JSON: stable, and diffable line by line."""
    body = request.get("body") if isinstance(request, Mapping) else None
    return orjson.dumps(
        body, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    ).decode()


def request_diff(recorded: Mapping[str, Any], sent: Mapping[str, Any]) -> str:
    """A unified diff from the recorded request's body to the sent one's (``-`` recorded)."""
    lines = difflib.unified_diff(
        _body_text(recorded).splitlines(),
        _body_text(sent).splitlines(),
        fromfile="recorded",
        tofile="replayed",
        lineterm="",
        n=1,
    )
    return "\n".join(lines)


def request_summary(request: Any) -> str:
    """One line naming a request: method, path, model and the start of its prompt."""
    if not isinstance(request, Mapping):
        return repr(request)
    parts = [f"{request.get('method')} {request.get('path')}"]
    body = request.get("body")
    if isinstance(body, Mapping):
        if isinstance(body.get("model"), str):
            parts.append(f"model={body['model']}")
        prompt = prompt_text(body)
        if prompt:
            short = " ".join(prompt.split())
            if len(short) > _SUMMARY_CHARS:
                short = short[: _SUMMARY_CHARS - 1] + "…"
            parts.append(repr(short))
    return " ".join(parts)


def prompt_text(body: Mapping[str, Any]) -> str | None:
    """What a request asks, in words: the text of its last user turn.

    The last user turn, not the first message: an agent's requests share their system
    instructions and first question, and differ in the turn that was added last. Read from chat
    ``messages`` (OpenAI, Anthropic), Responses API ``input`` (a string or a list of items),
    Gemini ``contents``, or a completion's ``prompt``/embedding's ``input``; a turn that carries
    only tool results is read when no user turn has text.
    """
    for name in ("messages", "input", "contents"):
        turns = body.get(name)
        if isinstance(turns, str):
            return turns
        if isinstance(turns, list) and turns:
            if all(isinstance(turn, str) for turn in turns):
                return " ".join(turns)  # a list of prompts or of texts to embed
            return _last_turn_text(turns)
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else None


def _last_turn_text(turns: list[Any]) -> str | None:
    fallback = None
    for turn in reversed(turns):
        if not isinstance(turn, Mapping):
            continue
        text = _text_of(turn.get("content", turn.get("parts", turn.get("output"))))
        if not text:
            continue
        if turn.get("role") == "user":
            return text
        fallback = fallback or text
    return fallback


def _text_of(content: Any) -> str | None:
    """The words in a turn's content: a string, or the text of its parts (``text``,
    ``input_text``, ``tool_result`` parts, Gemini ``parts``)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping):
            text = part.get("text", part.get("content"))
            inner = text if isinstance(text, str) else _text_of(text)
            if inner:
                texts.append(inner)
    return " ".join(texts) or None
