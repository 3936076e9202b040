"""Checks for token usage: presence, arithmetic, placement in streams (seed: last chunk; OpenAI: include_usage)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conformance.checks.common import clip
from conformance.results import CheckFailure

_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def usage_present(req: str, usage: Any) -> None:
    """Billing and client-side budgeting read usage from every non-streamed response."""
    if not isinstance(usage, Mapping):
        raise CheckFailure(req, f"usage is {usage!r}; expected an object with {', '.join(_KEYS)}",
                           observed=usage, expected="usage object")
    bad = {k: usage.get(k) for k in _KEYS
           if not isinstance(usage.get(k), int) or isinstance(usage.get(k), bool) or usage[k] < 0}
    if bad:
        raise CheckFailure(req, f"usage fields not non-negative integers: {bad}", observed=dict(usage),
                           expected="non-negative integers")


def usage_arithmetic(req: str, usage: Any) -> None:
    """total_tokens = prompt_tokens + completion_tokens (spec: 'Total number of tokens used ... (prompt + completion)')."""
    usage_present(req, usage)
    p, c, t = (usage[k] for k in _KEYS)
    if t != p + c:
        raise CheckFailure(req, f"total_tokens {t} != prompt_tokens {p} + completion_tokens {c} (= {p + c})",
                           observed=t, expected=p + c)


def _has_finish(chunk: Any) -> bool:
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    return isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason") is not None
                                             for c in choices)


def usage_on_final_chunk(req: str, chunks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Seed: 'the usage field is returned in the very last chunk on the response (i.e. the one having finish_reason
    set)'. Returns that usage."""
    if not chunks:
        raise CheckFailure(req, "no chunks in the stream", observed=[], expected="chunks")
    last = chunks[-1]
    if not _has_finish(last):
        raise CheckFailure(req, f"the last chunk has no finish_reason set: {clip(last)}",
                           observed=last, expected="last chunk carrying finish_reason and usage")
    usage = last.get("usage")
    if not isinstance(usage, Mapping):
        where = [i for i, c in enumerate(chunks) if isinstance(c, dict) and c.get("usage")]
        raise CheckFailure(
            req, f"the last chunk (the one with finish_reason) has usage {usage!r}"
            + (f"; usage appeared on chunk(s) {where} of {len(chunks)}" if where else "; no chunk carried usage"),
            observed=usage, expected="usage object on the final chunk")
    usage_present(req, usage)
    return dict(usage)


def usage_null_elsewhere(req: str, chunks: Sequence[dict[str, Any]]) -> None:
    """Only the final chunk carries usage; intermediate chunks have usage null (or no usage key)."""
    for i, chunk in enumerate(chunks[:-1]):
        if isinstance(chunk, dict) and chunk.get("usage") is not None:
            raise CheckFailure(req, f"chunk {i} of {len(chunks)} (not the last) carries usage {chunk['usage']!r}",
                               observed=chunk.get("usage"), expected=None)


def include_usage_chunk(req: str, chunks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """OpenAI: with include_usage, one extra last chunk with choices [] and usage; every other chunk usage null."""
    if not chunks:
        raise CheckFailure(req, "no chunks in the stream", observed=[], expected="chunks")
    last = chunks[-1]
    if last.get("choices") != [] or not isinstance(last.get("usage"), Mapping):
        raise CheckFailure(req, f"the last chunk before [DONE] is {clip(last)}; expected choices [] and a usage object",
                           observed=last, expected={"choices": [], "usage": "{...}"})
    for i, chunk in enumerate(chunks[:-1]):
        if "usage" not in chunk or chunk.get("usage") is not None:
            raise CheckFailure(req, f"chunk {i} has usage {chunk.get('usage', '<absent>')!r}; expected usage: null",
                               observed=chunk.get("usage", "<absent>"), expected=None)
    usage_present(req, last["usage"])
    return dict(last["usage"])


def no_usage_in_stream(req: str, chunks: Sequence[dict[str, Any]]) -> None:
    """Without include_usage, OpenAI streams carry no usage statistics."""
    with_usage = [i for i, c in enumerate(chunks) if isinstance(c, dict) and c.get("usage") is not None]
    if with_usage:
        raise CheckFailure(req, f"chunk(s) {with_usage} carry usage although include_usage was not requested",
                           observed=chunks[with_usage[0]].get("usage"), expected=None)


def usage_equal(req: str, streamed: Any, non_streamed: Any) -> None:
    """The same greedy request costs the same tokens whether streamed or not."""
    a = {k: streamed.get(k) for k in _KEYS} if isinstance(streamed, Mapping) else streamed
    b = {k: non_streamed.get(k) for k in _KEYS} if isinstance(non_streamed, Mapping) else non_streamed
    if a != b:
        raise CheckFailure(req, f"streamed usage {a} differs from non-streamed usage {b}", observed=a, expected=b)


def same_prompt_tokens(req: str, usages: Sequence[Any]) -> None:
    """One prompt, one prompt_tokens count, whatever the generation parameters."""
    counts = [u.get("prompt_tokens") if isinstance(u, Mapping) else None for u in usages]
    if len(set(map(repr, counts))) != 1 or counts[0] is None:
        raise CheckFailure(req, f"the same prompt was counted as {counts} prompt tokens across requests",
                           observed=counts, expected="one integer")
