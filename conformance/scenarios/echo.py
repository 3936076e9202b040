"""echo on /completions."""

from __future__ import annotations

from conformance import strategies as S
from conformance.checks import echo as checks
from conformance.scenario import Context, scenario
from conformance.scenarios._support import NONDETERMINISTIC, Oracle, ok, text


@scenario("echo.completions", covers=["echo.prefix", "echo.logprobs_first_null"])
def echo_completions(ctx: Context) -> None:
    """echo true returns prompt + completion; with logprobs the first prompt token's logprob is null."""
    oracle = Oracle(ctx, False, prompt=S.PROMPT, max_tokens=8)
    echoed = ok(ctx, oracle.request("echo", echo=True), "echo")
    got = text(ctx, echoed)
    if got != S.PROMPT + oracle.text and got.startswith(S.PROMPT) and not oracle.deterministic():
        ctx.not_applicable("echo.prefix", NONDETERMINISTIC)
    else:
        ctx.verify("echo.prefix", checks.echo_prefix, "echo.prefix", got, S.PROMPT, oracle.text)
    with_lp = ok(ctx, oracle.request("echo with logprobs", echo=True, logprobs=1), "echo with logprobs")
    ctx.verify("echo.logprobs_first_null", checks.first_logprob_null, "echo.logprobs_first_null",
               (with_lp.get("choices") or [{}])[0].get("logprobs"))
