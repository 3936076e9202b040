"""Stop sequences: drawn from the endpoint's own greedy output, then re-requested (the endpoint is the oracle)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import stop as checks
from conformance.scenario import Context, scenario
from conformance.scenarios._support import NONDETERMINISTIC, Oracle, finish, ok, stream_completion, text

OUTPUT = ["stop.included", "stop.excluded"]


def _baseline(ctx: Context, chat_endpoint: bool = False) -> Oracle:
    if chat_endpoint:
        return Oracle(ctx, True, messages=S.CHAT_MESSAGES, max_tokens=S.MAX_TOKENS)
    return Oracle(ctx, False, prompt=S.PROMPT, max_tokens=S.MAX_TOKENS)


def _need_text(oracle: Oracle, minimum: int = 2) -> None:
    from conformance.results import NotApplicable

    if len(oracle.text.strip()) < minimum:
        raise NotApplicable(f"the greedy output {oracle.text!r} is too short to draw stop sequences from")


def check_stopped(ctx: Context, oracle: Oracle, stops: Sequence[str] | str, cut_req: str,
                  extra_reqs: Sequence[str] = ()) -> None:
    """Request with `stops` and verify output inclusion/exclusion, the cut, finish_reason and usage."""
    stop_list = [stops] if isinstance(stops, str) else list(stops)
    include = ctx.behaviour("stop.output") == "include"
    expected = checks.expected_stopped_text(oracle.text, stop_list, include)
    response = oracle.request(f"greedy with stop={stop_list!r}", stop=stops)
    with ctx.expect(cut_req):
        common.status_ok(cut_req, response)
    if response.status != 200 or not isinstance(response.json, dict):
        return
    got = text(ctx, response.json)
    reason = finish(ctx, response.json)
    if expected is None:  # no stop occurs in the generated text
        if got != oracle.text and not oracle.deterministic():
            ctx.not_applicable(cut_req, NONDETERMINISTIC)
            return
        ctx.verify(cut_req, checks.unchanged_by_stop, cut_req, got, oracle.text, stop_list)
        return
    want, hit = expected
    if got != want and not oracle.deterministic():
        for req in (cut_req, *extra_reqs, *OUTPUT, "stop.truncation_point", "stop.finish_reason"):
            if req in ctx.spec.covers:
                ctx.not_applicable(req, NONDETERMINISTIC)
        return
    ctx.verify("stop.included", checks.text_ends_with_stop, "stop.included", got, hit)
    ctx.verify("stop.excluded", checks.text_excludes_stop, "stop.excluded", got, hit)
    for req in {cut_req, *extra_reqs}:
        ctx.verify(req, checks.truncated_at, req, got, want, oracle.text, stop_list)
    at_end = oracle.text.find(hit) + len(hit) == len(oracle.text)
    allowed = ["stop", "length"] if at_end and oracle.finish == "length" else ["stop"]
    if "stop.finish_reason" in ctx.spec.covers:
        ctx.verify("stop.finish_reason", checks.finish_reason_is, "stop.finish_reason", reason, allowed)
    if "stop.usage" in ctx.spec.covers:
        ctx.verify("stop.usage", checks.stop_usage, "stop.usage", response.json.get("usage"), oracle.usage)


@scenario("stop.single_drawn", covers=[*OUTPUT, "stop.truncation_point", "stop.finish_reason", "stop.usage"])
def stop_single_drawn(ctx: Context) -> None:
    """One stop sequence drawn from the greedy output: kept/dropped per profile, cut at its first occurrence."""
    oracle = _baseline(ctx)
    _need_text(oracle)

    def example(data: st.DataObject) -> None:
        check_stopped(ctx, oracle, data.draw(S.stop_from(oracle.text), label="stop"), "stop.truncation_point")

    S.run_examples(ctx, example)


@scenario("stop.many_drawn", covers=[*OUTPUT, "stop.first_of_many", "stop.finish_reason"])
def stop_many_drawn(ctx: Context) -> None:
    """2-4 stop sequences (some absent from the output): generation ends at the earliest occurrence."""
    oracle = _baseline(ctx)
    _need_text(oracle)

    def example(data: st.DataObject) -> None:
        check_stopped(ctx, oracle, data.draw(S.stop_sets(oracle.text), label="stops"), "stop.first_of_many")

    S.run_examples(ctx, example)


@scenario("stop.mid_token_drawn", covers=[*OUTPUT, "stop.mid_token"])
def stop_mid_token_drawn(ctx: Context) -> None:
    """Stop sequences ending inside a token (token offsets from logprobs when available)."""
    from conformance.results import NotApplicable

    oracle = _baseline(ctx)
    _need_text(oracle)
    probe = oracle.request("token boundaries of the baseline (logprobs)", logprobs=1)
    tokens = None
    if probe.status == 200 and isinstance(probe.json, dict):
        lp = (probe.json.get("choices") or [{}])[0].get("logprobs")
        tokens = lp.get("tokens") if isinstance(lp, dict) else None
    candidates = S.mid_token_candidates(oracle.text, S.token_boundaries(tokens, oracle.text))
    if not candidates:
        raise NotApplicable(f"no substring of the greedy output {oracle.text!r} ends inside a token")

    def example(data: st.DataObject) -> None:
        check_stopped(ctx, oracle, data.draw(st.sampled_from(candidates), label="stop"), "stop.mid_token")

    S.run_examples(ctx, example)


@scenario("stop.repeated_drawn", covers=[*OUTPUT, "stop.repeated"])
def stop_repeated_drawn(ctx: Context) -> None:
    """Stop sequences that occur more than once in the unstopped output: cut at the first one."""
    from conformance.results import NotApplicable

    oracle = _baseline(ctx)
    candidates = S.repeated_candidates(oracle.text)
    if not candidates:
        raise NotApplicable(f"no substring occurs twice in the greedy output {oracle.text!r}")

    def example(data: st.DataObject) -> None:
        check_stopped(ctx, oracle, data.draw(st.sampled_from(candidates), label="stop"), "stop.repeated")

    S.run_examples(ctx, example)


@scenario("stop.prompt_only", covers=["stop.prompt_only"])
def stop_prompt_only(ctx: Context) -> None:
    """A stop sequence present only in the prompt does not stop generation."""
    from conformance.results import NotApplicable

    oracle = _baseline(ctx)
    words = S.prompt_only_stops(S.PROMPT, oracle.text)
    if not words:
        raise NotApplicable(f"every word of the prompt also occurs in the output {oracle.text!r}")
    check_stopped(ctx, oracle, words[0], "stop.prompt_only")


@scenario("stop.chat", covers=[*OUTPUT, "stop.truncation_point", "stop.finish_reason"])
def stop_chat(ctx: Context) -> None:
    """The same stop semantics on /chat/completions (one stop drawn from the chat output)."""
    oracle = _baseline(ctx, chat_endpoint=True)
    _need_text(oracle)

    def example(data: st.DataObject) -> None:
        check_stopped(ctx, oracle, data.draw(S.stop_from(oracle.text), label="stop"), "stop.truncation_point")

    S.run_examples(ctx, example, max_examples=min(2, ctx.max_examples))


@scenario("stop.stream", covers=["stop.stream_no_leak"])
def stop_stream(ctx: Context) -> None:
    """Streaming with a stop: the joined deltas equal the non-streamed stopped text (no leaked stop prefix)."""
    oracle = _baseline(ctx)
    _need_text(oracle)

    def example(data: st.DataObject) -> None:
        stops = data.draw(S.stop_sets(oracle.text), label="stops")
        response = oracle.request(f"non-streamed with stop={stops!r}", stop=stops)
        body = ok(ctx, response, "non-streamed request with stop")
        stream = stream_completion(ctx, note=f"streamed with stop={stops!r}", **oracle.body, stop=stops)
        with ctx.expect("stop.stream_no_leak"):
            from conformance.checks import stream as stream_checks
            from conformance.scenarios._support import folded_text

            stream_checks.content_type_is_sse("stop.stream_no_leak", stream)
            streamed, _ = folded_text(stream, False)
            non_streamed = text(ctx, body)
            if streamed != non_streamed and not oracle.deterministic():
                raise _Nondeterministic()
            checks.truncated_at("stop.stream_no_leak", streamed, non_streamed, oracle.text, stops)

    try:
        S.run_examples(ctx, example, max_examples=min(3, ctx.max_examples))
    except _Nondeterministic:
        ctx.not_applicable("stop.stream_no_leak", NONDETERMINISTIC)


class _Nondeterministic(Exception):
    pass


@scenario("stop.forms", covers=["stop.string_or_list", "stop.four_accepted", "stop.too_many_rejected"])
def stop_forms(ctx: Context) -> None:
    """stop as a string or a list; four stops accepted; five rejected (param stop)."""
    oracle = _baseline(ctx)
    _need_text(oracle)
    word = next((w for w in oracle.text.split() if w.strip()), oracle.text.strip()[:3])
    as_string = oracle.request("stop as a string", stop=word)
    as_list = oracle.request("stop as a one-item list", stop=[word])
    with ctx.expect("stop.string_or_list"):
        common.status_ok("stop.string_or_list", as_string)
        common.status_ok("stop.string_or_list", as_list)
        common.equal("stop.string_or_list", f"text with stop={word!r} vs stop=[{word!r}]",
                     text(ctx, as_list.json), text(ctx, as_string.json))
    four: list[Any] = [word, S.ABSENT_STOP, S.ABSENT_STOP + "1", S.ABSENT_STOP + "2"]
    ctx.verify("stop.four_accepted", common.status_ok, "stop.four_accepted", oracle.request("four stops", stop=four))
    five = [*four, S.ABSENT_STOP + "3"]
    ctx.verify("stop.too_many_rejected", common.is_openai_error, "stop.too_many_rejected",
               oracle.request("five stops", stop=five), 400, param="stop")
