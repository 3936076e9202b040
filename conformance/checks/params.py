"""Checks for sampling parameters and the options the seed lists as unsupported."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance.checks.common import clip, is_openai_error, status_ok
from conformance.results import CheckFailure


def accepted(req: str, response: Any) -> None:
    """A valid request (e.g. one sending an option at its default, as the SDKs do) is served with HTTP 200."""
    status_ok(req, response)


def rejected_param(req: str, response: Any, param: str) -> None:
    """An unsupported option with a non-default value is refused with 400 invalid_request_error naming it,
    so the client learns it was not applied (instead of silently getting different behaviour)."""
    if response.status == 200:
        raise CheckFailure(req, f"non-default {param} was accepted with HTTP 200 (silently ignored or applied); "
                           f"expected 400 invalid_request_error with param {param!r}",
                           observed=200, expected=400, param=param)
    is_openai_error(req, response, 400, param=param, error_type="invalid_request_error")


def token_absent(req: str, tokens: Sequence[str], banned: str) -> None:
    """logit_bias -100 bans a token: it must not be generated."""
    hits = [i for i, t in enumerate(tokens) if t == banned]
    if hits:
        raise CheckFailure(req, f"token {banned!r} banned with logit_bias -100 was generated at position(s) {hits}: "
                           f"{clip(''.join(tokens))}", observed=list(tokens), expected=f"no {banned!r}")




def single_token_repeated(req: str, text: str, count: int) -> None:
    """logit_bias +100 on one token selects it exclusively: `count` greedy tokens spell one string repeated."""
    if not text or len(text) % count:
        raise CheckFailure(req, f"with +100 bias on one token, {count} tokens should spell one string repeated "
                           f"{count} times; got {clip(text)}", observed=text, expected=f"u * {count}")
    unit = text[: len(text) // count]
    if unit * count != text:
        raise CheckFailure(req, f"with +100 bias on one token, {count} tokens should repeat one string; got {clip(text)}",
                           observed=text, expected=f"{unit!r} * {count}")
