"""Determinism at temperature 0: the oracle every output comparison relies on."""

from __future__ import annotations

from conformance import strategies as S
from conformance.checks.determinism import identical_outputs
from conformance.scenario import Context, scenario
from conformance.scenarios._support import Oracle, ok, text


@scenario("determinism.greedy", covers=["determinism.greedy_repeatable"])
def determinism_greedy(ctx: Context) -> None:
    """The same greedy request, made again without the cache, returns the same text (completions and chat)."""
    for chat_endpoint, body in ((False, {"prompt": S.PROMPT}), (True, {"messages": S.CHAT_MESSAGES})):
        oracle = Oracle(ctx, chat_endpoint, max_tokens=S.MAX_TOKENS, **body)
        again = ok(ctx, oracle._request(cache=False, note="identical greedy request, uncached"), "repeat")
        ctx.verify("determinism.greedy_repeatable", identical_outputs, "determinism.greedy_repeatable",
                   oracle.text, text(ctx, again), "text")
