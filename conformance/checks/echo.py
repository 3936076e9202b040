"""Checks for echo (completions): the prompt comes back in front of the completion."""

from __future__ import annotations

from typing import Any

from conformance.checks.common import clip
from conformance.results import CheckFailure


def echo_prefix(req: str, text: str, prompt: str, completion: str) -> None:
    """echo true returns prompt + the completion the same request returns without echo."""
    if text != prompt + completion:
        part = "does not start with the prompt" if not text.startswith(prompt) else "has a different completion"
        raise CheckFailure(req, f"echoed text {clip(text)} {part}; expected {clip(prompt + completion)}",
                           observed=text, expected=prompt + completion)


def first_logprob_null(req: str, logprobs: Any) -> None:
    """The first prompt token has no context, so its token_logprob is null."""
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    if not isinstance(values, list) or not values:
        raise CheckFailure(req, f"no token_logprobs to inspect: {clip(logprobs)}", observed=logprobs,
                           expected="token_logprobs")
    if values[0] is not None:
        raise CheckFailure(req, f"token_logprobs[0] is {values[0]!r} for the first prompt token; expected null",
                           observed=values[0], expected=None)
