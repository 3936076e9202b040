"""Hypothesis strategies and the property runner used by scenarios against a live endpoint.

The endpoint is the oracle: a scenario first makes a greedy request without the feature under test, then
draws inputs (stop sequences...) from that output with these strategies, re-requests and compares. Every
example costs requests, so strategies draw from small, precomputed candidate sets.
"""

from __future__ import annotations

import contextlib
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


class _StopExamples(BaseException):
    """Ends a property run at once. A BaseException (like KeyboardInterrupt) so that Hypothesis neither counts it
    as a failure to replay and shrink (more requests) nor sees later examples stop drawing early (which it
    reports as inconsistent data generation)."""


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
        try:
            body(data)
        except HypothesisException:
            raise
        except Exception as exc:  # recorded, re-raised after the property
            escaped.append(exc)
            raise _StopExamples() from None

    with _LOCK, contextlib.suppress(_StopExamples):
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


# -- drawn inputs for the max_tokens, usage/stream and unsupported-option properties ------------------------

# Short English prompts: a few tokens each on any tokenizer, continued with ordinary prose by most models.
PROMPTS = (PROMPT, PROMPT_2, "The capital of France is", "In the morning I", "Water boils at",
           "My favourite book is")
CHAT_PROMPTS = (CHAT_MESSAGES[0]["content"], "Name a colour.", "Say hello to a friend.",
                "Describe the sea in a few words.")


def prompts() -> st.SearchStrategy[str]:
    """One of the short /completions prompts."""
    return st.sampled_from(PROMPTS)


def chat_messages() -> st.SearchStrategy[list[dict[str, str]]]:
    """A one-turn chat conversation with a short user message."""
    return st.sampled_from(CHAT_PROMPTS).map(lambda content: [{"role": "user", "content": content}])


def request_inputs(chat_endpoint: bool) -> st.SearchStrategy[dict[str, Any]]:
    """The prompt part of a body: {"prompt": ...} for /completions, {"messages": [...]} for chat."""
    if chat_endpoint:
        return chat_messages().map(lambda messages: {"messages": messages})
    return prompts().map(lambda prompt: {"prompt": prompt})


def small_max_tokens(high: int = 16) -> st.SearchStrategy[int]:
    """A small max_tokens (cheap to generate)."""
    return st.integers(1, high)


def overflow_amounts(context_length: int) -> st.SearchStrategy[int]:
    """How far max_tokens exceeds context - prompt_tokens: 1 (the boundary) up to the whole context, or (half of
    the time) one to two contexts, so that max_tokens alone exceeds the context even when the prompt is long."""
    top = max(1, context_length)
    return st.one_of(st.integers(1, top), st.integers(top, 2 * top))


# context_length_exceeded_behavior values that are neither "truncate" nor "error".
INVALID_OVERFLOW_BEHAVIOURS = ("bogus", "TRUNCATE", "Error", "ignore", "truncate_left", "")


class _Omitted:
    """Marker for "the key is not sent at all"."""

    def __repr__(self) -> str:
        return "<omitted>"


OMITTED: Any = _Omitted()

# The forms of "not using" each option the seed lists as unsupported, as clients send them: 0, 0.0, 1, null,
# empty. functions is an array with minItems 1 and not nullable in the OpenAPI description: SDKs omit it.
DEFAULT_FORMS: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (0, 0.0, None),
    "frequency_penalty": (0, 0.0, None),
    "best_of": (1, None),
    "logit_bias": ({}, None),
    "functions": (OMITTED,),
}
BIAS_TOKEN = "100"  # an ordinary token id in common vocabularies
BIAS_TOKENS = (BIAS_TOKEN, "101", "220", "500")
FUNCTION_DEFS: tuple[dict[str, Any], ...] = (
    {"name": "get_weather", "description": "Get the weather for a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"name": "get_time", "description": "Get the local time in a time zone",
     "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}},
    {"name": "add", "description": "Add two numbers",
     "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                    "required": ["a", "b"]}},
)


def default_forms(name: str) -> st.SearchStrategy[Any]:
    """One way of sending option `name` at its default value (OMITTED: not sent)."""
    return st.sampled_from(DEFAULT_FORMS[name])


def _penalty() -> st.SearchStrategy[Any]:
    # JSON integers and decimals across [-2, 2], never 0
    return st.one_of(st.sampled_from([1, 2, -1, -2]),
                     st.integers(-200, 200).filter(lambda i: i != 0).map(lambda i: i / 100))


def non_default_values(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Body fields using option `name` with a value other than its default (within the documented range).

    best_of comes with the n it must exceed; logit_bias starts from the +100 single-token bias (whose effect
    is observable) and otherwise maps 1-2 token ids to non-zero biases."""
    if name in ("presence_penalty", "frequency_penalty"):
        return _penalty().map(lambda v: {name: v})
    if name == "best_of":
        return st.integers(1, 2).flatmap(
            lambda n: st.integers(n + 1, n + 2).map(lambda b: {"best_of": b} if n == 1 else {"best_of": b, "n": n}))
    if name == "logit_bias":
        biases = st.dictionaries(st.sampled_from(BIAS_TOKENS), st.integers(-100, 100).filter(lambda v: v != 0),
                                 min_size=1, max_size=2)
        return st.one_of(st.just({BIAS_TOKEN: 100}), biases).map(lambda b: {"logit_bias": b})
    if name == "functions":
        return st.lists(st.sampled_from(FUNCTION_DEFS), min_size=1, max_size=2, unique_by=lambda f: str(f["name"])) \
            .map(lambda fs: {"functions": list(fs)})
    raise KeyError(name)
