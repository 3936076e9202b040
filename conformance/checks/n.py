"""Checks for several choices: n and prompt lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance import schemas
from conformance.results import CheckFailure


def choice_count(req: str, body: Any, expected: int) -> None:
    """n = k (times the number of prompts) gives exactly that many choices."""
    choices = body.get("choices") if isinstance(body, dict) else None
    count = len(choices) if isinstance(choices, list) else None
    if count != expected:
        raise CheckFailure(req, f"expected {expected} choices, got {count}", observed=count, expected=expected)


def indexes(req: str, choices: Sequence[Any], expected: int | None = None) -> None:
    """choices[].index is 0..k-1, each exactly once (clients index their result arrays with it)."""
    problems = schemas.choice_index_errors(list(choices), expected)
    if problems:
        raise CheckFailure(req, "; ".join(problems), observed=[c.get("index") if isinstance(c, dict) else c
                                                               for c in choices], expected=expected)


def stream_indexes(req: str, chunks: Sequence[dict[str, Any]], n: int) -> None:
    """Chunk choice indexes are choice numbers 0..n-1, each receiving content and its own finish_reason."""
    all_choices = [c for chunk in chunks for c in (chunk.get("choices") or []) if isinstance(c, dict)]
    problems = schemas.choice_index_errors(all_choices, n, repeats=True)
    if problems:
        raise CheckFailure(req, "; ".join(problems), observed=sorted({c.get("index") for c in all_choices},
                                                                      key=repr), expected=list(range(n)))
    finished = {c.get("index") for c in all_choices if c.get("finish_reason") is not None}
    missing = sorted(set(range(n)) - finished)
    if missing:
        raise CheckFailure(req, f"choice(s) {missing} never got a finish_reason in the stream",
                           observed=sorted(finished), expected=list(range(n)))
