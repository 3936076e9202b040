"""Several choices: n and prompt lists."""

from __future__ import annotations

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import n as checks
from conformance.checks import stream as stream_checks
from conformance.scenario import Context, scenario
from conformance.scenarios._support import NONDETERMINISTIC, Oracle, chat, completion, ok, stream_completion


@scenario("n.choices", covers=["n.choice_count", "n.indexes", "n.stream_indexes"])
def n_choices(ctx: Context) -> None:
    """n = 2 gives two choices indexed 0 and 1, streamed or not, completions and chat."""
    comp = ok(ctx, completion(ctx, note="n=2", prompt=S.PROMPT, max_tokens=8, temperature=0, n=2), "n=2")
    conv = ok(ctx, chat(ctx, note="chat n=2", messages=S.CHAT_MESSAGES, max_tokens=8, temperature=0, n=2),
              "chat n=2")
    for body in (comp, conv):
        ctx.verify("n.choice_count", checks.choice_count, "n.choice_count", body, 2)
        ctx.verify("n.indexes", checks.indexes, "n.indexes", body.get("choices") or [], 2)
    stream = stream_completion(ctx, note="streamed n=2", prompt=S.PROMPT, max_tokens=8, temperature=0, n=2)
    with ctx.expect("n.stream_indexes"):
        stream_checks.content_type_is_sse("n.stream_indexes", stream)
        checks.stream_indexes("n.stream_indexes", stream.chunks, 2)


@scenario("n.prompt_list", covers=["n.prompt_list"])
def n_prompt_list(ctx: Context) -> None:
    """A list of two prompts gives two choices, each the single-prompt greedy result."""
    singles = [Oracle(ctx, False, prompt=p, max_tokens=8) for p in (S.PROMPT, S.PROMPT_2)]
    response = completion(ctx, note="two prompts", prompt=[S.PROMPT, S.PROMPT_2], max_tokens=8, temperature=0)
    with ctx.expect("n.prompt_list"):
        common.status_ok("n.prompt_list", response)
        checks.choice_count("n.prompt_list", response.json, 2)
        checks.indexes("n.prompt_list", response.json["choices"], 2)
    if response.status != 200 or len(response.json.get("choices") or []) != 2:
        return
    by_index = {c.get("index"): c for c in response.json["choices"]}
    for i, single in enumerate(singles):
        got = by_index.get(i, {}).get("text")
        if got != single.text and not single.deterministic():
            ctx.not_applicable("n.prompt_list", NONDETERMINISTIC)
            return
        ctx.verify("n.prompt_list", common.equal, "n.prompt_list", f"choice {i} of the prompt list vs prompt {i} alone",
                   got, single.text)

