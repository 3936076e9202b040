"""Response shapes (stream chunks are validated in the stream scenarios, errors in the error scenarios)."""

from __future__ import annotations

from conformance import strategies as S
from conformance.checks import common
from conformance.scenario import Context, scenario
from conformance.scenarios._support import Oracle


@scenario("schema.responses", covers=["schema.completion.response", "schema.chat.response"])
def schema_responses(ctx: Context) -> None:
    """The greedy completion and chat responses validate against their schemas."""
    comp = Oracle(ctx, False, prompt=S.PROMPT, max_tokens=S.MAX_TOKENS)
    ctx.verify("schema.completion.response", common.valid_against, "schema.completion.response", "completion",
               comp.json)
    chat = Oracle(ctx, True, messages=S.CHAT_MESSAGES, max_tokens=S.MAX_TOKENS)
    ctx.verify("schema.chat.response", common.valid_against, "schema.chat.response", "chat.completion", chat.json)
