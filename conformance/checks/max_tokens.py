"""Checks for max_tokens and the context window (seed: Fireworks clamps, OpenAI rejects)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from conformance.results import CheckFailure


def _tokens(req: str, usage: Any, key: str) -> int:
    value = usage.get(key) if isinstance(usage, Mapping) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise CheckFailure(req, f"usage.{key} is {value!r}, not an integer (usage: {usage!r})",
                           observed=usage, expected=f"integer usage.{key}")
    return value


def completion_tokens_at_most(req: str, usage: Any, limit: int) -> None:
    """The endpoint must not generate past the limit the request set."""
    done = _tokens(req, usage, "completion_tokens")
    if done > limit:
        raise CheckFailure(req, f"usage.completion_tokens is {done}, above the limit {limit}",
                           observed=done, expected=f"<= {limit}")


def length_means_max_tokens(req: str, finish_reason: Any, usage: Any, max_tokens: int) -> None:
    """finish_reason 'length' means exactly max_tokens tokens were generated (n = 1); never more than max_tokens."""
    done = _tokens(req, usage, "completion_tokens")
    if finish_reason == "length" and done != max_tokens:
        raise CheckFailure(
            req, f"finish_reason is 'length' but completion_tokens is {done}, not max_tokens {max_tokens}",
            observed=done, expected=max_tokens,
        )
    if done > max_tokens:
        raise CheckFailure(req, f"completion_tokens {done} exceeds max_tokens {max_tokens}",
                           observed=done, expected=f"<= {max_tokens}")


def clamp_arithmetic(req: str, usage: Any, finish_reason: Any, context_length: int) -> None:
    """Clamped max_tokens = context - prompt_tokens: never more, and exactly that when run to length."""
    prompt = _tokens(req, usage, "prompt_tokens")
    done = _tokens(req, usage, "completion_tokens")
    room = context_length - prompt
    if done > room:
        raise CheckFailure(
            req, f"prompt_tokens {prompt} + completion_tokens {done} = {prompt + done} exceeds the context "
            f"length {context_length}",
            observed=prompt + done, expected=f"<= {context_length}",
        )
    if finish_reason == "length" and done != room:
        raise CheckFailure(
            req, f"finish_reason 'length' after {done} tokens, but the clamped max_tokens should be context "
            f"{context_length} - prompt_tokens {prompt} = {room}",
            observed=done, expected=room,
        )


def message_mentions_number(req: str, response: Any, number: int) -> None:
    """The error message states the context length, so a user can fix the request."""
    body = response.json if isinstance(getattr(response, "json", None), dict) else {}
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str):
        raise CheckFailure(req, f"no error message to inspect (body {body!r})", observed=body,
                           expected=f"an error message naming {number}")
    numbers = {int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", message)}
    if number not in numbers:
        raise CheckFailure(req, f"error message does not name the context length {number}: {message!r}",
                           observed=message, expected=f"a message containing {number}")
