"""Checks for log probabilities (completions: tokens/token_logprobs/top_logprobs/text_offset; chat: content[])."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from conformance.checks.common import clip
from conformance.results import CheckFailure

_KEYS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


def completions_shape(req: str, logprobs: Any, k: int) -> None:
    """Four parallel lists of equal length; at most k+1 alternatives per position (spec: up to logprobs+1)."""
    if not isinstance(logprobs, dict):
        raise CheckFailure(req, f"choices[0].logprobs is {clip(logprobs)}; expected an object with {', '.join(_KEYS)}",
                           observed=logprobs, expected="logprobs object")
    lists: dict[str, Any] = {key: logprobs.get(key) for key in _KEYS}
    bad = [key for key, value in lists.items() if not isinstance(value, list)]
    if bad:
        raise CheckFailure(req, f"logprobs.{bad[0]} is {clip(lists[bad[0]])}, not a list", observed=logprobs,
                           expected="lists")
    lengths = {key: len(value) for key, value in lists.items()}
    if len(set(lengths.values())) != 1:
        raise CheckFailure(req, f"logprobs lists differ in length: {lengths}", observed=lengths, expected="equal")
    for pos, top in enumerate(lists["top_logprobs"]):
        if top is not None and (not isinstance(top, dict) or len(top) > k + 1):
            raise CheckFailure(req, f"top_logprobs[{pos}] has {len(top) if isinstance(top, dict) else top!r} entries; "
                               f"expected a mapping of at most {k + 1} (logprobs={k})", observed=top,
                               expected=f"<= {k + 1}")


def tokens_join(req: str, tokens: Sequence[str], text: str, offsets: Sequence[int] | None = None,
                base: int = 0) -> None:
    """The tokens spell the returned text, and text_offset (relative to `base`) gives each token's start."""
    joined = "".join(t for t in tokens if isinstance(t, str))
    if joined != text:
        raise CheckFailure(req, f"joined tokens {clip(joined)} differ from the text {clip(text)}",
                           observed=joined, expected=text)
    if offsets is not None:
        position = 0
        for i, (token, offset) in enumerate(zip(tokens, offsets, strict=False)):
            if offset - base != position:
                raise CheckFailure(req, f"text_offset[{i}] is {offset}; token {token!r} starts at {position + base}",
                                   observed=list(offsets), expected=position + base)
            position += len(token)


def values_nonpositive(req: str, values: Sequence[Any], allow_null_first: bool = False) -> None:
    """Log probabilities are finite numbers <= 0."""
    for i, value in enumerate(values):
        if value is None and allow_null_first and i == 0:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value > 0:
            raise CheckFailure(req, f"logprob #{i} is {value!r}; expected a finite number <= 0",
                               observed=value, expected="<= 0")


def chat_shape(req: str, logprobs: Any, k: int) -> list[dict[str, Any]]:
    """Chat logprobs.content: entries with token, logprob, bytes and at most k top_logprobs. Returns content."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content:
        raise CheckFailure(req, f"choices[0].logprobs is {clip(logprobs)}; expected {{content: [...]}} (non-empty)",
                           observed=logprobs, expected="content list")
    for i, entry in enumerate(content):
        missing = [key for key in ("token", "logprob", "bytes", "top_logprobs")
                   if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise CheckFailure(req, f"logprobs.content[{i}] lacks {missing}: {clip(entry)}", observed=entry,
                               expected="token, logprob, bytes, top_logprobs")
        top = entry["top_logprobs"]
        if not isinstance(top, list) or len(top) > k:
            raise CheckFailure(req, f"logprobs.content[{i}].top_logprobs has {len(top) if isinstance(top, list) else top!r}"
                               f" entries; expected at most {k}", observed=top, expected=f"<= {k}")
    return content
