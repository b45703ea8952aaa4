"""What the test model server says: deterministic answers, token counts, vectors and cache memory.

Owns the provider-neutral content of a reply: the answer text as a pure function of (model,
messages, system prompt), the word-based token count both dialects report, the embedding vectors,
and the :class:`PromptCache` ledger that makes cached-token counts deterministic. Does not own any
provider's JSON shape (``_openai``, ``_anthropic``) nor HTTP (``_server``).
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
from collections.abc import Sequence

import orjson

# A fixed vocabulary keeps answers readable in test failures while still varying with the prompt.
VOCABULARY = (
    "amber", "basil", "cedar", "delta", "ember", "fjord", "garnet", "harbor",
    "indigo", "juniper", "kestrel", "lumen", "meadow", "nectar", "onyx", "pebble",
    "quartz", "raven", "sierra", "tundra", "umber", "violet", "willow", "xenon",
    "yarrow", "zephyr", "acorn", "birch", "coral", "dune", "elm", "fern",
)  # fmt: skip

_ECHO_WORDS = 6


def fingerprint(*parts: object) -> str:
    """A stable hex digest of JSON-able parts; equal inputs give equal digests in every process."""
    canonical = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def text_of(content: object) -> str:
    """The plain text inside a message's content: a string, or text found in a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text for text in map(text_of, content) if text)
    if isinstance(content, dict):
        text = content.get("text")
        if isinstance(text, str):
            return text
        # tool_result blocks nest their text one level down, under "content".
        return text_of(content.get("content"))
    return ""


def count_tokens(text: str) -> int:
    """Whitespace-separated words: crude, but exact and easy to predict in a test."""
    return len(text.split())


def _last_user_text(messages: Sequence[object]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            # Anthropic returns tool results in user messages; the user's words came before.
            if (
                isinstance(content, list)
                and content
                and all(
                    isinstance(block, dict) and block.get("type") == "tool_result"
                    for block in content
                )
            ):
                continue
            return text_of(content)
    return ""


def answer_for(model: str, messages: Sequence[object], system: object) -> str:
    """The answer to a prompt: four hash-chosen words, then an echo of the last user words.

    The hash makes different prompts get different answers; the echo lets a reader of a failing
    test see which prompt an answer belongs to.
    """
    digest = bytes.fromhex(fingerprint(model, messages, system))
    lead = [VOCABULARY[byte % len(VOCABULARY)] for byte in digest[:4]]
    lead[0] = lead[0].capitalize()
    echo = _last_user_text(messages).split()[:_ECHO_WORDS]
    if not echo:
        return " ".join(lead) + "."
    return " ".join(lead) + ": " + " ".join(echo)


def cut_answer(answer: str, max_tokens: int | None) -> tuple[list[str], bool]:
    """The answer's words after a ``max_tokens`` limit, and whether the limit cut it short."""
    words = answer.split()
    if max_tokens is not None and max_tokens < len(words):
        return words[:max_tokens], True
    return words, False


def embedding_for(model: str, text: str, dimensions: int) -> list[float]:
    """A unit vector of ``dimensions`` floats derived from (model, text) alone."""
    raw = hashlib.shake_256(orjson.dumps([model, text])).digest(2 * dimensions)
    values = [value / 32768.0 for value in struct.unpack(f"<{dimensions}h", raw)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [value / norm for value in values]


class PromptCache:
    """The prompt prefixes one server instance has seen, so cache hits are decided by history.

    Real providers cache opportunistically; here a prefix is cached exactly when an earlier call
    to the same server sent it, which makes cached-token counts predictable in tests.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def remember(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key was seen before this call; all keys count as seen afterwards."""
        with self._lock:
            seen = [key in self._seen for key in keys]
            self._seen.update(keys)
        return seen

    def clear(self) -> None:
        """Forget every prefix, as if the server had just started."""
        with self._lock:
            self._seen.clear()
