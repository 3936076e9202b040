"""Sampling parameters and the options the seed lists as unsupported (default accepted; non-default per profile)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import params as checks
from conformance.checks.determinism import identical_outputs
from conformance.client import Response
from conformance.scenario import Context, scenario
from conformance.scenarios._support import chat, completion, text

FUNCTIONS = [{"name": "get_weather", "description": "Get the weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
BASE: dict[str, Any] = {"prompt": S.PROMPT, "max_tokens": 8, "temperature": 0}
CHAT_BASE: dict[str, Any] = {"messages": S.CHAT_MESSAGES, "max_tokens": 8, "temperature": 0}
BIAS_TOKEN = "100"  # an ordinary token id in common vocabularies


def _options(name: str) -> tuple[Callable[..., Response], dict[str, Any], dict[str, Any]]:
    """(request function, default-valued body, non-default body) for one option."""
    if name == "functions":
        return chat, dict(CHAT_BASE), {**CHAT_BASE, "functions": FUNCTIONS}
    default = {"presence_penalty": 0, "frequency_penalty": 0, "best_of": 1, "logit_bias": {}}[name]
    non_default = {"presence_penalty": 1.0, "frequency_penalty": 1.0, "best_of": 2,
                   "logit_bias": {BIAS_TOKEN: 100}}[name]
    return completion, {**BASE, name: default}, {**BASE, name: non_default}


def _make(name: str) -> None:
    @scenario(f"params.{name}", covers=[f"params.{name}.default_accepted", f"params.{name}.rejected",
                                        f"params.{name}.supported"])
    def run(ctx: Context) -> None:
        call, default, non_default = _options(name)
        ctx.verify(f"params.{name}.default_accepted", checks.accepted, f"params.{name}.default_accepted",
                   call(ctx, note=f"{name} at its default", **default))
        rejected, supported = ctx.applies(f"params.{name}.rejected"), ctx.applies(f"params.{name}.supported")
        if not (rejected or supported):
            return
        response = call(ctx, note=f"{name} with a non-default value", **non_default)
        if rejected:
            ctx.verify(f"params.{name}.rejected", checks.rejected_param, f"params.{name}.rejected", response, name)
        if supported:
            req = f"params.{name}.supported"
            with ctx.expect(req):
                checks.accepted(req, response)
                if name == "best_of":
                    common.equal(req, "number of choices with best_of 2, n 1", len(response.json["choices"]), 1)
                if name == "logit_bias" and response.json["choices"][0].get("finish_reason") == "length":
                    checks.single_token_repeated(req, text(ctx, response.json), 8)

    run.__doc__ = f"{name}: the default value is accepted; a non-default value is rejected or honoured per profile."


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
