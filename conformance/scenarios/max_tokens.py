"""max_tokens and the context window: overflow cases derived from the prompt_tokens the endpoint reports.

The overflow scenarios are Hypothesis properties: each example draws a short prompt (and endpoint) and how far
max_tokens exceeds context - prompt_tokens, where prompt_tokens is what the endpoint itself reported for that
prompt, then checks clamping or rejection per the profile (and per context_length_exceeded_behavior).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import max_tokens as checks
from conformance.client import Response
from conformance.results import EndpointError, NotApplicable
from conformance.scenario import Context, scenario
from conformance.scenarios._support import (
    NONDETERMINISTIC,
    Oracle,
    chat,
    completion,
    finish,
    ok,
    text,
    verify_drawn,
)

EXACT_CLAMP_MAX_CONTEXT = 4096  # exact clamp arithmetic generates/reads ~context tokens: only for small contexts
PROMPT_OVER_MAX_CONTEXT = 32768  # a prompt longer than the context costs ~context tokens if wrongly accepted
WORD = "hello"
CLAMP_TOKENS_PER_EXAMPLE = 1024  # per unit of --max-examples: the exact-clamp property's token allowance
CLAMP_ROOM = 8  # exact clamping leaves at most this many tokens of room (so running to length stays cheap)
PROMPT_EXCESS = 64  # a prompt over the context exceeds it by 2..this many tokens


def _request(ctx: Context, chat_endpoint: bool, note: str, **body: Any) -> Response:
    return (chat if chat_endpoint else completion)(ctx, note=note, **body)


def _prompt_tokens(ctx: Context, prompt: str | None = None, *, chat_endpoint: bool = False, **inputs: Any) -> int:
    """usage.prompt_tokens the endpoint reports for this prompt (or messages): a cheap, cached request."""
    if prompt is not None:
        inputs = {"prompt": prompt}
    body = ok(ctx, _request(ctx, chat_endpoint, "prompt_tokens calibration", **inputs, max_tokens=1, temperature=0),
              "prompt_tokens calibration")
    value = (body.get("usage") or {}).get("prompt_tokens")
    if not isinstance(value, int) or isinstance(value, bool):
        raise EndpointError(ctx.spec.covers[0], f"usage.prompt_tokens is {value!r}; cannot size prompts",
                            observed=body.get("usage"), expected="integer prompt_tokens")
    return value


def _calibration(ctx: Context) -> tuple[int, float]:
    """(prompt_tokens of `a` words, tokens per word) for prompts repeating WORD; cached after the first call."""
    a, b = 8, 40
    pa, pb = _prompt_tokens(ctx, S.repeat_word_prompt(WORD, a)), _prompt_tokens(ctx, S.repeat_word_prompt(WORD, b))
    return pa, max((pb - pa) / (b - a), 0.01)


def _words_for(ctx: Context, target: int) -> int:
    pa, per = _calibration(ctx)
    return max(1, 8 + round((target - pa) / per))


def long_prompt(ctx: Context, target: int) -> tuple[str, int]:
    """A prompt of about `target` tokens (repeating a short word), calibrated with reported prompt_tokens.
    Returns (prompt, estimated prompt_tokens)."""
    pa, per = _calibration(ctx)
    count = _words_for(ctx, target)
    return S.repeat_word_prompt(WORD, count), round(pa + (count - 8) * per)


def sized_prompt(ctx: Context, context: int, room: int) -> tuple[str, int]:
    """A prompt leaving 1..about `room` tokens of the context free, with its prompt_tokens as the endpoint reports
    them (measured, re-sized up to twice if the calibration was off)."""
    count = _words_for(ctx, context - room)
    for _ in range(3):
        prompt = S.repeat_word_prompt(WORD, count)
        response = completion(ctx, note="prompt_tokens of a long prompt", prompt=prompt, max_tokens=1, temperature=0)
        measured = ((response.json or {}).get("usage") or {}).get("prompt_tokens") \
            if response.status == 200 and isinstance(response.json, dict) else None
        if isinstance(measured, int) and 0 < context - measured <= 4 * room:
            return prompt, measured
        _, per = _calibration(ctx)
        over = (measured - (context - room)) if isinstance(measured, int) else room + 4
        count = max(1, count - max(1, round(over / per)))
    raise NotApplicable(f"could not size a prompt leaving 1..{4 * room} tokens of the {context}-token context")


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


def _drawn_overflow(ctx: Context, data: st.DataObject, context: int, *, endpoints: bool = True
                    ) -> tuple[bool, dict[str, Any], int, int, dict[str, Any]]:
    """Draw endpoint, prompt and overflow amount: (chat?, inputs, prompt_tokens, max_tokens, example label)."""
    chat_endpoint = data.draw(st.booleans(), label="chat") if endpoints else False
    inputs = data.draw(S.request_inputs(chat_endpoint), label="inputs")
    prompt_tokens = _prompt_tokens(ctx, chat_endpoint=chat_endpoint, **inputs)
    if prompt_tokens >= context:
        raise NotApplicable(f"a short prompt already counts {prompt_tokens} tokens, over the context {context}")
    overflow = data.draw(S.overflow_amounts(context), label="overflow")
    max_tokens = context - prompt_tokens + overflow
    example = {"endpoint": "chat" if chat_endpoint else "completions", **inputs, "prompt_tokens": prompt_tokens,
               "overflow": overflow, "max_tokens": max_tokens, "context": context}
    return chat_endpoint, inputs, prompt_tokens, max_tokens, example


@scenario("max_tokens.overflow", covers=["max_tokens.overflow_clamped", "max_tokens.overflow_rejected",
                                         "max_tokens.error_message"])
def max_tokens_overflow(ctx: Context) -> None:
    """Drawn prompt + max_tokens over context - prompt_tokens by a drawn amount: clamped or 400, per profile.

    The endpoint (completions or chat) is drawn too; prompt_tokens is what the endpoint reports for the prompt.
    Guard stops keep clamped requests cheap."""
    context = ctx.require_context_length()
    rejected: list[bool] = []

    def example(data: st.DataObject) -> None:
        chat_endpoint, inputs, prompt_tokens, max_tokens, drawn = _drawn_overflow(ctx, data, context)
        response = _request(ctx, chat_endpoint, f"prompt ({prompt_tokens} tokens) + max_tokens {max_tokens} > "
                            f"context {context}", **inputs, max_tokens=max_tokens, temperature=0, stop=S.GUARD_STOPS)

        def clamped(req: str) -> None:
            common.status_ok(req, response)
            checks.completion_tokens_at_most(req, response.json.get("usage"), context - prompt_tokens)

        verify_drawn(ctx, drawn, "max_tokens.overflow_clamped", clamped, "max_tokens.overflow_clamped")
        _rejection(ctx, drawn, "max_tokens.overflow_rejected", response, context, rejected)

    S.run_examples(ctx, example)
    if not rejected:
        ctx.not_applicable("max_tokens.error_message", "the overflowing requests were not rejected, no message to read")


def _rejection(ctx: Context, drawn: dict[str, Any], requirement: str, response: Any, context: int,
               rejected: list[bool]) -> None:
    """`requirement`: an OpenAI-shaped 400; a rejection's message must name the context (max_tokens.error_message)."""
    verify_drawn(ctx, drawn, requirement, common.is_openai_error, requirement, response, 400,
                 error_type="invalid_request_error")
    if response.status == 400:
        rejected.append(True)
        verify_drawn(ctx, drawn, "max_tokens.error_message", checks.message_mentions_number,
                     "max_tokens.error_message", response, context)


def clamp_examples(max_examples: int, context: int) -> int:
    """Examples of the exact-clamp property: half the run's budget, scaled down for long contexts."""
    return max(1, min((max_examples + 1) // 2, max_examples * CLAMP_TOKENS_PER_EXAMPLE // max(1, context)))


@scenario("max_tokens.clamp_exact", covers=["max_tokens.clamp_arithmetic", "max_tokens.overflow_clamped"])
def max_tokens_clamp_exact(ctx: Context) -> None:
    """A prompt leaving a drawn few tokens, max_tokens over by a drawn amount: clamped to exactly context - prompt.

    The clamped generation is exactly context - prompt_tokens when it runs to length, and never more."""
    context = ctx.require_context_length()
    if context > EXACT_CLAMP_MAX_CONTEXT:
        raise NotApplicable(f"context length {context} > {EXACT_CLAMP_MAX_CONTEXT}: exact clamp arithmetic would "
                            f"spend about {context} tokens; acceptance is checked cheaply by max_tokens.overflow")

    def example(data: st.DataObject) -> None:
        room_wanted = data.draw(st.integers(1, CLAMP_ROOM), label="room")
        prompt, measured = sized_prompt(ctx, context, room_wanted)
        overflow = data.draw(S.overflow_amounts(context), label="overflow")
        room = context - measured
        drawn = {"prompt_tokens": measured, "room": room, "overflow": overflow, "max_tokens": room + overflow,
                 "context": context}
        response = completion(ctx, note=f"prompt {measured} tokens + max_tokens {room + overflow} > context {context}",
                              prompt=prompt, max_tokens=room + overflow, temperature=0)
        verify_drawn(ctx, drawn, "max_tokens.overflow_clamped", common.status_ok, "max_tokens.overflow_clamped",
                     response)
        if response.status == 200 and isinstance(response.json, dict):
            verify_drawn(ctx, drawn, "max_tokens.clamp_arithmetic", checks.clamp_arithmetic,
                         "max_tokens.clamp_arithmetic", response.json.get("usage"), finish(ctx, response.json),
                         context)
        else:  # nothing was clamped, so the arithmetic fails too (not a suite error)
            verify_drawn(ctx, drawn, "max_tokens.clamp_arithmetic", common.status_ok, "max_tokens.clamp_arithmetic",
                         response)

    # Each example reads about a context of prompt tokens twice: half the per-run budget, and fewer
    # examples the longer the context (one at 4096 by default), so a paid run stays within its token budget.
    S.run_examples(ctx, example, max_examples=clamp_examples(ctx.max_examples, context))


@scenario("max_tokens.prompt_over_context", covers=["max_tokens.prompt_exceeds_context", "max_tokens.error_message"])
def max_tokens_prompt_over_context(ctx: Context) -> None:
    """A prompt longer than the context alone (by a drawn amount): 400 whatever max_tokens and overflow behaviour.

    max_tokens is drawn, and so is context_length_exceeded_behavior where the profile honours it."""
    context = ctx.require_context_length()
    if context > PROMPT_OVER_MAX_CONTEXT:
        raise NotApplicable(f"context length {context} > {PROMPT_OVER_MAX_CONTEXT}: a prompt that long costs too "
                            "much if the endpoint wrongly accepts it")
    honoured = ctx.behaviour("max_tokens.context_length_exceeded_behavior") == "honoured"
    rejected: list[bool] = []

    def example(data: st.DataObject) -> None:
        excess = data.draw(st.integers(2, PROMPT_EXCESS), label="excess")
        max_tokens = data.draw(st.one_of(st.just(1), st.integers(1, context)), label="max_tokens")
        behaviour = data.draw(st.sampled_from([None, "truncate", "error"]), label="cleb") if honoured else None
        prompt, estimate = long_prompt(ctx, context + excess)
        extra: dict[str, Any] = {} if behaviour is None else {"context_length_exceeded_behavior": behaviour}
        drawn = {"prompt_tokens (estimated)": estimate, "max_tokens": max_tokens, "context": context, **extra}
        response = completion(ctx, note=f"prompt of about {estimate} tokens > context {context}", prompt=prompt,
                              max_tokens=max_tokens, temperature=0, stop=S.GUARD_STOPS, **extra)
        _rejection(ctx, drawn, "max_tokens.prompt_exceeds_context", response, context, rejected)

    S.run_examples(ctx, example)
    if not rejected:
        ctx.not_applicable("max_tokens.error_message", "the over-long prompts were not rejected, no message to read")


@scenario("max_tokens.context_length_exceeded_behavior",
          covers=["max_tokens.cleb_error", "max_tokens.cleb_truncate", "max_tokens.cleb_invalid"])
def max_tokens_cleb(ctx: Context) -> None:
    """context_length_exceeded_behavior on drawn overflows: error -> 400, truncate -> clamped, other values -> 400."""
    context = ctx.require_context_length()

    def example(data: st.DataObject) -> None:
        chat_endpoint, inputs, prompt_tokens, max_tokens, drawn = _drawn_overflow(ctx, data, context)
        body: dict[str, Any] = {**inputs, "max_tokens": max_tokens, "temperature": 0, "stop": S.GUARD_STOPS}
        if ctx.applies("max_tokens.cleb_error"):
            verify_drawn(ctx, drawn, "max_tokens.cleb_error", common.is_openai_error, "max_tokens.cleb_error",
                         _request(ctx, chat_endpoint, "overflow with context_length_exceeded_behavior=error", **body,
                                  context_length_exceeded_behavior="error"), 400, error_type="invalid_request_error")
        if ctx.applies("max_tokens.cleb_truncate"):
            response = _request(ctx, chat_endpoint, "overflow with context_length_exceeded_behavior=truncate", **body,
                                context_length_exceeded_behavior="truncate")

            def truncated(req: str) -> None:
                common.status_ok(req, response)
                checks.completion_tokens_at_most(req, response.json.get("usage"), context - prompt_tokens)

            verify_drawn(ctx, drawn, "max_tokens.cleb_truncate", truncated, "max_tokens.cleb_truncate")
        if ctx.applies("max_tokens.cleb_invalid"):
            value = data.draw(st.sampled_from(S.INVALID_OVERFLOW_BEHAVIOURS), label="invalid cleb")
            small = data.draw(S.small_max_tokens(4), label="small max_tokens")
            invalid = {**drawn, "context_length_exceeded_behavior": value, "max_tokens": small}
            verify_drawn(ctx, invalid, "max_tokens.cleb_invalid", common.is_openai_error, "max_tokens.cleb_invalid",
                         _request(ctx, chat_endpoint, f"context_length_exceeded_behavior={value!r}", **inputs,
                                  max_tokens=small, temperature=0, context_length_exceeded_behavior=value),
                         400, error_type="invalid_request_error")

    S.run_examples(ctx, example)


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
