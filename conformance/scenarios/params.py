"""Sampling parameters and the options the seed lists as unsupported (default accepted; non-default per profile).

The unsupported options are Hypothesis properties: each example draws how the default is sent (0, 0.0, 1, null,
empty, omitted) and which non-default value (penalties across [-2, 2], best_of above n, logit_bias maps, function
lists), and checks acceptance, rejection naming the param, or support, per profile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import params as checks
from conformance.checks.determinism import identical_outputs
from conformance.client import Response
from conformance.scenario import Context, scenario
from conformance.scenarios._support import chat, completion, text, verify_drawn

BASE: dict[str, Any] = {"prompt": S.PROMPT, "max_tokens": 8, "temperature": 0}
CHAT_BASE: dict[str, Any] = {"messages": S.CHAT_MESSAGES, "max_tokens": 8, "temperature": 0}
BIAS_TOKEN = S.BIAS_TOKEN
FUNCTIONS = [S.FUNCTION_DEFS[0]]


def _options(name: str) -> tuple[Callable[..., Response], dict[str, Any]]:
    """(request function, body without the option) for one option: functions is chat-only, the rest completions."""
    return (chat, dict(CHAT_BASE)) if name == "functions" else (completion, dict(BASE))


def _with(base: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    return dict(base) if value is S.OMITTED else {**base, name: value}


def _make(name: str) -> None:
    @scenario(f"params.{name}", covers=[f"params.{name}.default_accepted", f"params.{name}.rejected",
                                        f"params.{name}.supported"])
    def run(ctx: Context) -> None:
        call, base = _options(name)
        rejected, supported = ctx.applies(f"params.{name}.rejected"), ctx.applies(f"params.{name}.supported")

        def example(data: st.DataObject) -> None:
            form = data.draw(S.default_forms(name), label="default form")
            verify_drawn(ctx, {name: form}, f"params.{name}.default_accepted", checks.accepted,
                         f"params.{name}.default_accepted",
                         call(ctx, note=f"{name} at its default ({form!r})", **_with(base, name, form)))
            if not (rejected or supported):
                return
            fields = data.draw(S.non_default_values(name), label="non-default")
            response = call(ctx, note=f"{name} with a non-default value", **{**base, **fields})
            if rejected:
                verify_drawn(ctx, fields, f"params.{name}.rejected", checks.rejected_param, f"params.{name}.rejected",
                             response, name)
            if supported:
                verify_drawn(ctx, fields, f"params.{name}.supported", _supported, f"params.{name}.supported",
                             response, fields)

        def _supported(req: str, response: Response, fields: dict[str, Any]) -> None:
            checks.accepted(req, response)
            if name == "best_of":
                common.equal(req, f"number of choices with best_of {fields['best_of']}, n {fields.get('n', 1)}",
                             len(response.json["choices"]), fields.get("n", 1))
            if (name == "logit_bias" and fields["logit_bias"] == {BIAS_TOKEN: 100}
                    and response.json["choices"][0].get("finish_reason") == "length"):
                checks.single_token_repeated(req, text(ctx, response.json), base["max_tokens"])

        S.run_examples(ctx, example)

    run.__doc__ = (f"{name}: drawn default forms are accepted; drawn non-default values are rejected or honoured "
                   "per profile.")


for _name in ("presence_penalty", "frequency_penalty", "best_of", "logit_bias", "functions"):
    _make(_name)


@scenario("params.ranges", covers=["params.temperature_range", "params.top_p_range"])
def params_ranges(ctx: Context) -> None:
    """temperature in [0, 2] and top_p in (0, 1] accepted; out of range rejected with 400."""
    body: dict[str, Any] = {"prompt": S.PROMPT, "max_tokens": 4}
    with ctx.expect("params.temperature_range"):
        common.status_ok("params.temperature_range", completion(ctx, note="temperature 2", **body, temperature=2))
        common.is_openai_error("params.temperature_range", completion(ctx, note="temperature 2.5", **body,
                                                                       temperature=2.5), 400)
    with ctx.expect("params.top_p_range"):
        common.status_ok("params.top_p_range", completion(ctx, note="top_p 0.5", **body, top_p=0.5))
        common.is_openai_error("params.top_p_range", completion(ctx, note="top_p 1.5", **body, top_p=1.5), 400)


@scenario("params.seed", covers=["params.seed_reproducible"])
def params_seed(ctx: Context) -> None:
    """Two sampled requests with the same seed return the same text."""
    body: dict[str, Any] = {"prompt": S.PROMPT, "max_tokens": 8, "temperature": 1.0, "seed": 1234}
    first, second = (completion(ctx, note=f"seeded sample #{i}", cache=False, **body) for i in (1, 2))
    with ctx.expect("params.seed_reproducible"):
        common.status_ok("params.seed_reproducible", first)
        common.status_ok("params.seed_reproducible", second)
        identical_outputs("params.seed_reproducible", text(ctx, first.json), text(ctx, second.json), "text")
