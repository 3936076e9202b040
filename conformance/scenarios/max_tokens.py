"""max_tokens and the context window: overflow cases derived from the prompt_tokens the endpoint reports."""

from __future__ import annotations

from typing import Any

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import max_tokens as checks
from conformance.results import EndpointError, NotApplicable
from conformance.scenario import Context, scenario
from conformance.scenarios._support import NONDETERMINISTIC, Oracle, chat, completion, finish, ok, text

EXACT_CLAMP_MAX_CONTEXT = 4096  # exact clamp arithmetic generates/reads ~context tokens: only for small contexts
PROMPT_OVER_MAX_CONTEXT = 32768  # a prompt longer than the context costs ~context tokens if wrongly accepted
WORD = "hello"


def _prompt_tokens(ctx: Context, prompt: str) -> int:
    body = ok(ctx, completion(ctx, note="prompt_tokens calibration", prompt=prompt, max_tokens=1, temperature=0),
              "prompt_tokens calibration")
    value = (body.get("usage") or {}).get("prompt_tokens")
    if not isinstance(value, int):
        raise EndpointError(ctx.spec.covers[0], f"usage.prompt_tokens is {value!r}; cannot size prompts",
                            observed=body.get("usage"), expected="integer prompt_tokens")
    return value


def long_prompt(ctx: Context, target: int) -> tuple[str, int]:
    """A prompt of about `target` tokens (repeating a short word), calibrated with reported prompt_tokens.
    Returns (prompt, prompt_tokens); prompt_tokens is exact (measured) unless the prompt exceeds the context."""
    a, b = 8, 40
    pa, pb = _prompt_tokens(ctx, S.repeat_word_prompt(WORD, a)), _prompt_tokens(ctx, S.repeat_word_prompt(WORD, b))
    per = max((pb - pa) / (b - a), 0.01)
    count = max(1, a + round((target - pa) / per))
    return S.repeat_word_prompt(WORD, count), round(pa + (count - a) * per)


@scenario("max_tokens.basic", covers=["max_tokens.respected", "max_tokens.length_finish",
                                      "max_tokens.within_context_unchanged"])
def max_tokens_basic(ctx: Context) -> None:
    """Small max_tokens: never exceeded, 'length' means exactly max_tokens, a shorter limit gives a prefix."""
    full = Oracle(ctx, False, prompt=S.PROMPT, max_tokens=S.MAX_TOKENS)
    for limit in (S.MAX_TOKENS, 4):
        body = full.json if limit == S.MAX_TOKENS else ok(ctx, full.request(f"max_tokens={limit}", max_tokens=limit),
                                                          f"max_tokens={limit}")
        ctx.verify("max_tokens.respected", checks.completion_tokens_at_most, "max_tokens.respected",
                   body.get("usage"), limit)
        ctx.verify("max_tokens.length_finish", checks.length_means_max_tokens, "max_tokens.length_finish",
                   finish(ctx, body), body.get("usage"), limit)
    short = text(ctx, body)
    if not full.text.startswith(short) and not full.deterministic():
        ctx.not_applicable("max_tokens.within_context_unchanged", NONDETERMINISTIC)
        return
    with ctx.expect("max_tokens.within_context_unchanged"):
        if not full.text.startswith(short):
            common.equal("max_tokens.within_context_unchanged", "max_tokens=4 output as a prefix of the "
                         "max_tokens=24 output", short, full.text[: len(short)])
        checks.length_means_max_tokens("max_tokens.within_context_unchanged", finish(ctx, body), body.get("usage"), 4)


@scenario("max_tokens.overflow", covers=["max_tokens.overflow_clamped", "max_tokens.overflow_rejected",
                                         "max_tokens.error_message"])
def max_tokens_overflow(ctx: Context) -> None:
    """Short prompt + max_tokens = context length: clamped (truncate) or 400 (error). Guard stops keep it cheap."""
    context = ctx.require_context_length()
    prompt_tokens = _prompt_tokens(ctx, S.PROMPT)
    response = completion(ctx, note=f"prompt ({prompt_tokens} tokens) + max_tokens {context} > context {context}",
                          prompt=S.PROMPT, max_tokens=context, temperature=0, stop=S.GUARD_STOPS)
    with ctx.expect("max_tokens.overflow_clamped"):
        common.status_ok("max_tokens.overflow_clamped", response)
        checks.completion_tokens_at_most("max_tokens.overflow_clamped", response.json.get("usage"),
                                          context - prompt_tokens)
    ctx.verify("max_tokens.overflow_rejected", common.is_openai_error, "max_tokens.overflow_rejected", response, 400,
               error_type="invalid_request_error")
    if response.status == 400:
        ctx.verify("max_tokens.error_message", checks.message_mentions_number, "max_tokens.error_message",
                   response, context)
    else:
        ctx.not_applicable("max_tokens.error_message", "the overflowing request was not rejected, no message to read")


@scenario("max_tokens.clamp_exact", covers=["max_tokens.clamp_arithmetic", "max_tokens.overflow_clamped"])
def max_tokens_clamp_exact(ctx: Context) -> None:
    """A prompt filling the context but a few tokens: clamped generation is exactly context - prompt_tokens."""
    context = ctx.require_context_length()
    if context > EXACT_CLAMP_MAX_CONTEXT:
        raise NotApplicable(f"context length {context} > {EXACT_CLAMP_MAX_CONTEXT}: exact clamp arithmetic would "
                            f"spend about {context} tokens; acceptance is checked cheaply by max_tokens.overflow")
    prompt, _ = long_prompt(ctx, context - 8)
    measured = _prompt_tokens(ctx, prompt)
    if measured >= context:
        raise NotApplicable(f"could not size a prompt under the context ({measured} >= {context} tokens)")
    response = completion(ctx, note=f"prompt {measured} tokens + max_tokens 64 > context {context}",
                          prompt=prompt, max_tokens=64, temperature=0)
    with ctx.expect("max_tokens.overflow_clamped"):
        common.status_ok("max_tokens.overflow_clamped", response)
    if response.status == 200 and isinstance(response.json, dict):
        ctx.verify("max_tokens.clamp_arithmetic", checks.clamp_arithmetic, "max_tokens.clamp_arithmetic",
                   response.json.get("usage"), finish(ctx, response.json), context)
    else:  # nothing was clamped, so the arithmetic fails too (not a suite error)
        ctx.verify("max_tokens.clamp_arithmetic", common.status_ok, "max_tokens.clamp_arithmetic", response)


@scenario("max_tokens.prompt_over_context", covers=["max_tokens.prompt_exceeds_context", "max_tokens.error_message"])
def max_tokens_prompt_over_context(ctx: Context) -> None:
    """A prompt longer than the context alone: 400 whatever the overflow behaviour."""
    context = ctx.require_context_length()
    if context > PROMPT_OVER_MAX_CONTEXT:
        raise NotApplicable(f"context length {context} > {PROMPT_OVER_MAX_CONTEXT}: a prompt that long costs too "
                            "much if the endpoint wrongly accepts it")
    prompt, estimate = long_prompt(ctx, context + 32)
    response = completion(ctx, note=f"prompt of about {estimate} tokens > context {context}", prompt=prompt,
                          max_tokens=1, temperature=0)
    ctx.verify("max_tokens.prompt_exceeds_context", common.is_openai_error, "max_tokens.prompt_exceeds_context",
               response, 400, error_type="invalid_request_error")
    if response.status == 400:
        ctx.verify("max_tokens.error_message", checks.message_mentions_number, "max_tokens.error_message",
                   response, context)
    else:
        ctx.not_applicable("max_tokens.error_message", "the over-long prompt was not rejected, no message to read")


@scenario("max_tokens.context_length_exceeded_behavior",
          covers=["max_tokens.cleb_error", "max_tokens.cleb_truncate", "max_tokens.cleb_invalid"])
def max_tokens_cleb(ctx: Context) -> None:
    """context_length_exceeded_behavior: error -> 400, truncate -> clamped, anything else -> 400."""
    context = ctx.require_context_length()
    prompt_tokens = _prompt_tokens(ctx, S.PROMPT)
    body: dict[str, Any] = {"prompt": S.PROMPT, "max_tokens": context, "temperature": 0, "stop": S.GUARD_STOPS}
    if ctx.applies("max_tokens.cleb_error"):
        ctx.verify("max_tokens.cleb_error", common.is_openai_error, "max_tokens.cleb_error",
                   completion(ctx, note="overflow with context_length_exceeded_behavior=error", **body,
                              context_length_exceeded_behavior="error"), 400, error_type="invalid_request_error")
    if ctx.applies("max_tokens.cleb_truncate"):
        response = completion(ctx, note="overflow with context_length_exceeded_behavior=truncate", **body,
                              context_length_exceeded_behavior="truncate")
        with ctx.expect("max_tokens.cleb_truncate"):
            common.status_ok("max_tokens.cleb_truncate", response)
            checks.completion_tokens_at_most("max_tokens.cleb_truncate", response.json.get("usage"),
                                              context - prompt_tokens)
    if ctx.applies("max_tokens.cleb_invalid"):
        ctx.verify("max_tokens.cleb_invalid", common.is_openai_error, "max_tokens.cleb_invalid",
                   completion(ctx, note="context_length_exceeded_behavior=bogus", prompt=S.PROMPT, max_tokens=4,
                              temperature=0, context_length_exceeded_behavior="bogus"),
                   400, error_type="invalid_request_error")


@scenario("max_tokens.default", covers=["max_tokens.default_completions"])
def max_tokens_default(ctx: Context) -> None:
    """/completions without max_tokens generates at most 16 tokens."""
    body = ok(ctx, completion(ctx, note="no max_tokens", prompt=S.PROMPT, temperature=0), "request without max_tokens")
    ctx.verify("max_tokens.default_completions", checks.length_means_max_tokens, "max_tokens.default_completions",
               finish(ctx, body), body.get("usage"), 16)


@scenario("max_tokens.max_completion_tokens", covers=["max_tokens.max_completion_tokens"])
def max_tokens_max_completion_tokens(ctx: Context) -> None:
    """Chat accepts max_completion_tokens and respects it."""
    response = chat(ctx, note="max_completion_tokens=5", messages=S.CHAT_MESSAGES, max_completion_tokens=5,
                    temperature=0)
    with ctx.expect("max_tokens.max_completion_tokens"):
        common.status_ok("max_tokens.max_completion_tokens", response)
        checks.completion_tokens_at_most("max_tokens.max_completion_tokens", response.json.get("usage"), 5)
