"""Token usage on non-streamed responses (streamed usage is checked in the stream scenarios)."""

from __future__ import annotations

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import usage as checks
from conformance.scenario import Context, scenario
from conformance.scenarios._support import Oracle, completion, ok


@scenario("usage.non_stream", covers=["usage.present", "usage.arithmetic", "usage.prompt_tokens_stable"])
def usage_non_stream(ctx: Context) -> None:
    """Completions and chat responses carry consistent usage; the same prompt always counts the same."""
    comp = Oracle(ctx, False, prompt=S.PROMPT, max_tokens=S.MAX_TOKENS)
    chat = Oracle(ctx, True, messages=S.CHAT_MESSAGES, max_tokens=S.MAX_TOKENS)
    for oracle in (comp, chat):
        ctx.verify("usage.present", checks.usage_present, "usage.present", oracle.usage)
        ctx.verify("usage.arithmetic", checks.usage_arithmetic, "usage.arithmetic", oracle.usage)
    short = ok(ctx, comp.request("same prompt, max_tokens=4", max_tokens=4), "max_tokens=4")
    stopped = ok(ctx, comp.request("same prompt, with a stop", stop=[S.ABSENT_STOP]), "with a stop")
    ctx.verify("usage.prompt_tokens_stable", checks.same_prompt_tokens, "usage.prompt_tokens_stable",
               [comp.usage, short.get("usage"), stopped.get("usage")])


@scenario("usage.stream_options_non_stream", covers=["usage.stream_options_requires_stream"])
def usage_stream_options_non_stream(ctx: Context) -> None:
    """stream_options without stream is refused (param stream_options)."""
    response = completion(ctx, note="stream_options on a non-streaming request", prompt=S.PROMPT, max_tokens=4,
                          temperature=0, stream_options={"include_usage": True})
    ctx.verify("usage.stream_options_requires_stream", common.is_openai_error, "usage.stream_options_requires_stream",
               response, 400, param="stream_options")
