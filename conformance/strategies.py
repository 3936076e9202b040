"""Hypothesis strategies and the property runner used by scenarios against a live endpoint.

The endpoint is the oracle: a scenario first makes a greedy request without the feature under test, then
draws inputs (stop sequences...) from that output with these strategies, re-requests and compares. Every
example costs requests, so strategies draw from small, precomputed candidate sets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from conformance.hypothesis_profiles import endpoint_settings

# Short prompts: cheap, and they make most models continue with ordinary prose.
PROMPT = "The quick brown fox"
PROMPT_2 = "Once upon a time"
MAX_TOKENS = 24
CHAT_MESSAGES = [{"role": "user", "content": "Write one sentence about a quick brown fox."}]
# Stops that end generation almost at once: bound the cost of requests whose max_tokens may be huge.
GUARD_STOPS = [" ", "\n", ".", ","]
ABSENT_STOP = "\u00a7\u00a4zq"  # a stop sequence no ordinary output contains

_LOCK = threading.Lock()  # Hypothesis runs one property at a time; scenarios run in threads


def run_examples(ctx: Any, body: Callable[[st.DataObject], None], max_examples: int | None = None) -> None:
    """Run `body(data)` for up to ctx.max_examples Hypothesis examples drawn with `st.data()`.

    Outcomes are recorded by `body` through ctx.verify, so Hypothesis never sees a failure (no replay, no
    shrinking: each would cost requests). The first exception that escapes `body` (transport failure,
    NotApplicable...) stops the remaining examples and is re-raised afterwards.
    """
    escaped: list[BaseException] = []

    @endpoint_settings(ctx, max_examples=max_examples)
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        if escaped:
            return
        try:
            body(data)
        except HypothesisException:
            raise
        except Exception as exc:  # recorded, re-raised after the property
            escaped.append(exc)

    with _LOCK:
        prop()
    if escaped:
        raise escaped[0]


def _visible(s: str) -> bool:
    return bool(s.strip())


def substrings(text: str, max_len: int = 8) -> list[str]:
    """Every distinct substring of `text` up to max_len characters with a non-space character, sorted."""
    found = {text[i:j] for i in range(len(text)) for j in range(i + 1, min(len(text), i + max_len) + 1)}
    return sorted(s for s in found if _visible(s))


def stop_from(text: str, max_len: int = 8) -> st.SearchStrategy[str]:
    """A stop sequence that occurs in `text`."""
    return st.sampled_from(substrings(text, max_len))


def token_boundaries(tokens: Sequence[str] | None, text: str) -> set[int] | None:
    """Character offsets where tokens start/end, when the tokens spell `text` exactly; else None."""
    if not tokens or "".join(tokens) != text:
        return None
    bounds, pos = {0}, 0
    for token in tokens:
        pos += len(token)
        bounds.add(pos)
    return bounds


def mid_token_candidates(text: str, boundaries: set[int] | None, max_len: int = 8) -> list[str]:
    """Substrings whose first occurrence ends strictly inside a token (by the token offsets when known,
    else inside a word), i.e. stops the endpoint cannot honour by comparing whole tokens."""
    out = set()
    for s in substrings(text, max_len):
        end = text.find(s) + len(s)
        if boundaries is not None:
            inside = end not in boundaries
        else:
            inside = 0 < end < len(text) and text[end - 1].isalnum() and text[end].isalnum()
        if inside:
            out.add(s)
    return sorted(out)


def repeated_candidates(text: str, max_len: int = 8) -> list[str]:
    """Substrings occurring at least twice in `text`."""
    return [s for s in substrings(text, max_len) if text.find(s, text.find(s) + 1) >= 0]


def stop_sets(text: str, max_len: int = 8) -> st.SearchStrategy[list[str]]:
    """2-4 stop sequences: some occurring in `text` with non-overlapping first occurrences (so the expected
    cut is unambiguous), optionally one that never occurs."""
    candidates = substrings(text, max_len)

    @st.composite
    def build(draw: st.DrawFn) -> list[str]:
        picked = draw(st.lists(st.sampled_from(candidates), min_size=2, max_size=4, unique=True))
        kept: list[str] = []
        spans: list[tuple[int, int]] = []
        for stop in picked:
            start = text.find(stop)
            span = (start, start + len(stop))
            if all(span[1] <= a or span[0] >= b for a, b in spans):
                kept.append(stop)
                spans.append(span)
        if len(kept) < 4 and draw(st.booleans()):
            kept.insert(draw(st.integers(0, len(kept))), ABSENT_STOP)
        return kept

    return build()


def prompt_only_stops(prompt: str, output: str) -> list[str]:
    """Words of the prompt that the output never contains (as stops, they must not stop generation)."""
    words = [w for w in prompt.split() if w and w not in output and (" " + w) not in output]
    return sorted(set(words))


def repeat_word_prompt(word: str, count: int) -> str:
    """A long prompt built by repeating a short word (calibrated against the reported prompt_tokens)."""
    return " ".join([word] * max(1, count))
