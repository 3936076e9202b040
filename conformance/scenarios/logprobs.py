"""Log probabilities on /completions (logprobs=k) and /chat/completions (logprobs, top_logprobs)."""

from __future__ import annotations

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import logprobs as checks
from conformance.scenario import Context, scenario
from conformance.scenarios._support import chat, completion, ok, text


@scenario("logprobs.completions", covers=["logprobs.completions_shape", "logprobs.completions_tokens_join",
                                          "logprobs.values_nonpositive"])
def logprobs_completions(ctx: Context) -> None:
    """logprobs=2: four parallel lists, tokens spell the text, values <= 0."""
    body = ok(ctx, completion(ctx, note="logprobs=2", prompt=S.PROMPT, max_tokens=8, temperature=0, logprobs=2),
              "logprobs=2")
    lp = body["choices"][0].get("logprobs") if body.get("choices") else None
    ctx.verify("logprobs.completions_shape", checks.completions_shape, "logprobs.completions_shape", lp, 2)
    if not isinstance(lp, dict) or not isinstance(lp.get("tokens"), list):
        return
    offsets = lp.get("text_offset") if isinstance(lp.get("text_offset"), list) else None
    base = offsets[0] if offsets and offsets[0] in (0, len(S.PROMPT)) else 0
    ctx.verify("logprobs.completions_tokens_join", checks.tokens_join, "logprobs.completions_tokens_join",
               lp["tokens"], text(ctx, body), offsets, base)
    values = list(lp.get("token_logprobs") or [])
    for top in lp.get("top_logprobs") or []:
        values.extend((top or {}).values())
    ctx.verify("logprobs.values_nonpositive", checks.values_nonpositive, "logprobs.values_nonpositive", values)


@scenario("logprobs.chat", covers=["logprobs.chat_shape", "logprobs.chat_tokens_join", "logprobs.values_nonpositive"])
def logprobs_chat(ctx: Context) -> None:
    """logprobs true, top_logprobs 2: content entries with token, logprob, bytes, top_logprobs."""
    body = ok(ctx, chat(ctx, note="chat logprobs", messages=S.CHAT_MESSAGES, max_tokens=8, temperature=0,
                        logprobs=True, top_logprobs=2), "chat logprobs")
    lp = body["choices"][0].get("logprobs") if body.get("choices") else None
    content = None
    with ctx.expect("logprobs.chat_shape"):
        content = checks.chat_shape("logprobs.chat_shape", lp, 2)
    if not content:
        return
    ctx.verify("logprobs.chat_tokens_join", checks.tokens_join, "logprobs.chat_tokens_join",
               [e.get("token") for e in content], text(ctx, body))
    values = [e.get("logprob") for e in content]
    values += [t.get("logprob") for e in content for t in (e.get("top_logprobs") or []) if isinstance(t, dict)]
    ctx.verify("logprobs.values_nonpositive", checks.values_nonpositive, "logprobs.values_nonpositive", values)


@scenario("logprobs.chat_top_without_logprobs", covers=["logprobs.chat_top_requires_logprobs"])
def logprobs_chat_top_without(ctx: Context) -> None:
    """top_logprobs without logprobs true is refused."""
    response = chat(ctx, note="top_logprobs without logprobs", messages=S.CHAT_MESSAGES, max_tokens=4, temperature=0,
                    top_logprobs=2)
    ctx.verify("logprobs.chat_top_requires_logprobs", common.is_openai_error, "logprobs.chat_top_requires_logprobs",
               response, 400)
