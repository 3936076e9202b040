"""Token usage on non-streamed responses (streamed usage is checked in the stream scenarios)."""

from __future__ import annotations

from hypothesis import strategies as st

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import usage as checks
from conformance.scenario import Context, scenario
from conformance.scenarios._support import Oracle, completion, ok, verify_drawn


@scenario("usage.non_stream", covers=["usage.present", "usage.arithmetic", "usage.prompt_tokens_stable"])
def usage_non_stream(ctx: Context) -> None:
    """Drawn prompts on both endpoints carry consistent usage; a drawn prompt counts the same whatever else varies."""

    def example(data: st.DataObject) -> None:
        inputs = {False: data.draw(S.request_inputs(False), label="prompt"),
                  True: data.draw(S.request_inputs(True), label="messages")}
        max_tokens = data.draw(S.small_max_tokens(S.MAX_TOKENS), label="max_tokens")
        oracles = {chat: Oracle(ctx, chat, **inputs[chat], max_tokens=max_tokens) for chat in (False, True)}
        for chat, oracle in oracles.items():
            drawn = {"endpoint": "chat" if chat else "completions", **inputs[chat], "max_tokens": max_tokens}
            verify_drawn(ctx, drawn, "usage.present", checks.usage_present, "usage.present", oracle.usage)
            verify_drawn(ctx, drawn, "usage.arithmetic", checks.usage_arithmetic, "usage.arithmetic", oracle.usage)
        chat = data.draw(st.booleans(), label="chat")
        oracle = oracles[chat]
        other = data.draw(S.small_max_tokens(S.MAX_TOKENS).filter(lambda m: m != max_tokens), label="other max_tokens")
        short = ok(ctx, oracle.request(f"same prompt, max_tokens={other}", max_tokens=other), f"max_tokens={other}")
        stopped = ok(ctx, oracle.request("same prompt, with a stop", stop=[S.ABSENT_STOP]), "with a stop")
        drawn = {"endpoint": "chat" if chat else "completions", **inputs[chat],
                 "max_tokens": [max_tokens, other, f"{max_tokens} + stop"]}
        verify_drawn(ctx, drawn, "usage.prompt_tokens_stable", checks.same_prompt_tokens, "usage.prompt_tokens_stable",
                     [oracle.usage, short.get("usage"), stopped.get("usage")])

    S.run_examples(ctx, example)


@scenario("usage.stream_options_non_stream", covers=["usage.stream_options_requires_stream"])
def usage_stream_options_non_stream(ctx: Context) -> None:
    """stream_options without stream is refused (param stream_options)."""
    response = completion(ctx, note="stream_options on a non-streaming request", prompt=S.PROMPT, max_tokens=4,
                          temperature=0, stream_options={"include_usage": True})
    ctx.verify("usage.stream_options_requires_stream", common.is_openai_error, "usage.stream_options_requires_stream",
               response, 400, param="stream_options")
