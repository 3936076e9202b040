"""Checks for stop sequences (seed: Fireworks keeps the stop word, OpenAI drops it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conformance.checks.common import clip
from conformance.results import CheckFailure


def first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """Where generation must stop in `text`: (start, stop) of the occurrence that completes first.

    Generation stops as soon as any stop sequence is complete, so the winner is the occurrence with the
    smallest end; ties (one stop a suffix of another) go to the longer, earlier-starting one. None if no
    stop occurs. Pure helper, not a check.
    """
    best: tuple[int, int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        start = text.find(stop)
        if start < 0:
            continue
        key = (start + len(stop), start, stop)
        if best is None or key[:2] < best[:2]:
            best = key
    return None if best is None else (best[1], best[2])


def expected_stopped_text(text: str, stops: Sequence[str], include: bool) -> tuple[str, str] | None:
    """The text a correct endpoint returns for `stops`, given the unstopped greedy `text`, and the stop hit."""
    hit = first_stop(text, stops)
    if hit is None:
        return None
    start, stop = hit
    return (text[: start + len(stop)] if include else text[:start]), stop


def text_ends_with_stop(req: str, text: str, stop: str) -> None:
    """Fireworks (seed): 'the returned string includes the stop word'."""
    if not text.endswith(stop):
        raise CheckFailure(
            req, f"returned text does not end with the stop sequence {stop!r}: text is {clip(text)}",
            observed=text, expected=f"text ending with {stop!r}",
        )


def text_excludes_stop(req: str, text: str, stop: str) -> None:
    """OpenAI: 'The returned text will not contain the stop sequence.'"""
    if stop in text:
        where = text.find(stop)
        raise CheckFailure(
            req, f"returned text contains the stop sequence {stop!r} at offset {where}: text is {clip(text)}",
            observed=text, expected=f"text without {stop!r}",
        )


def truncated_at(req: str, text: str, expected: str, baseline: str, stops: Sequence[str]) -> None:
    """The stopped text is exactly the unstopped greedy text cut at the first stop occurrence."""
    if text == expected:
        return
    if expected.startswith(text):
        how = f"it stops {len(expected) - len(text)} character(s) early"
    elif text.startswith(expected):
        how = f"it runs {len(text) - len(expected)} character(s) past the cut: extra {clip(text[len(expected):])}"
    else:
        common = 0
        while common < min(len(text), len(expected)) and text[common] == expected[common]:
            common += 1
        how = f"it diverges at offset {common}"
    raise CheckFailure(
        req,
        f"with stop {list(stops)!r}, expected {clip(expected)} (the unstopped text {clip(baseline)} cut at the "
        f"first stop), observed {clip(text)}: {how}",
        observed=text, expected=expected, baseline=baseline, stop=list(stops),
    )


def unchanged_by_stop(req: str, text: str, baseline: str, stops: Sequence[str]) -> None:
    """A stop that never occurs in the generated text must not change it (e.g. one found only in the prompt)."""
    if text != baseline:
        raise CheckFailure(
            req, f"stop {list(stops)!r} does not occur in the generated text, yet the output changed from "
            f"{clip(baseline)} to {clip(text)}",
            observed=text, expected=baseline, stop=list(stops),
        )


def finish_reason_is(req: str, finish_reason: Any, expected: str | Sequence[str]) -> None:
    """finish_reason names why generation ended ('stop' for a stop sequence, 'length' for max_tokens)."""
    allowed = (expected,) if isinstance(expected, str) else tuple(expected)
    if finish_reason not in allowed:
        raise CheckFailure(
            req, f"finish_reason is {finish_reason!r}; expected {' or '.join(map(repr, allowed))}",
            observed=finish_reason, expected=list(allowed),
        )


def stop_usage(req: str, usage: Mapping[str, Any] | None, baseline: Mapping[str, Any] | None) -> None:
    """Stopping early cannot change the prompt and cannot generate more than the unstopped request."""
    if not isinstance(usage, Mapping) or not isinstance(baseline, Mapping):
        raise CheckFailure(req, f"usage missing: stopped {usage!r}, unstopped {baseline!r}",
                           observed=usage, expected="usage objects")
    if usage.get("prompt_tokens") != baseline.get("prompt_tokens"):
        raise CheckFailure(
            req, f"prompt_tokens {usage.get('prompt_tokens')} with stop differs from {baseline.get('prompt_tokens')} "
            "without it, for the same prompt",
            observed=usage.get("prompt_tokens"), expected=baseline.get("prompt_tokens"),
        )
    done, limit = usage.get("completion_tokens"), baseline.get("completion_tokens")
    if not isinstance(done, int) or not isinstance(limit, int) or done > limit:
        raise CheckFailure(
            req, f"completion_tokens {done!r} with stop exceeds {limit!r} without it",
            observed=done, expected=f"<= {limit}",
        )
