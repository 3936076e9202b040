"""The max_tokens, stream/usage and unsupported-option properties, against a tiny in-process fake endpoint.

The fake (an httpx MockTransport, no sockets) follows the fireworks profile, counts one token per word, and
can be broken in ways a fixed example misses: a clamp that is wrong only for some overflow amounts, streamed
usage that is wrong only for small max_tokens, a non-default value rejected only when positive. The properties
must catch each with the right requirement id, and draw several distinct inputs while doing so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

import conformance.scenarios  # noqa: F401  (registers every scenario)
from conformance.catalogue import load_catalogue
from conformance.client import Client
from conformance.profiles import load_profile
from conformance.results import Cost, Status
from conformance.runner import applicability
from conformance.scenario import REGISTRY, Context, TargetInfo, Verdict, run_scenario
from conformance.scenarios._support import NONDETERMINISTIC

BASE_URL = "http://fake.invalid/v1"
CONTEXT = 64
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]
DEFAULTS: dict[str, tuple[Any, ...]] = {"presence_penalty": (0,), "frequency_penalty": (0,), "best_of": (1,),
                                        "logit_bias": ({},), "functions": ([],)}


@dataclass
class Fake:
    """Fireworks-profile behaviour; each fault breaks one thing for some inputs only."""

    overflow: str = "truncate"  # or "error"
    clamp_over_when_max_tokens_over_context: bool = False  # clamps to room + 1 when max_tokens > context
    stream_usage_wrong_below: int = 0  # streamed completion_tokens off by one when max_tokens < this
    reject_only_positive: bool = False  # a negative presence_penalty is silently accepted
    nondeterministic: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0

    # -- the model ---------------------------------------------------------------------------------------
    def _prompt_tokens(self, body: dict[str, Any], chat: bool) -> int:
        if chat:
            return 3 + sum(len(str(m.get("content", "")).split()) + 2 for m in body.get("messages", []))
        return len(str(body.get("prompt", "")).split())

    def _generate(self, seed_text: str, count: int) -> list[str]:
        self.calls += 1
        start = sum(map(ord, seed_text)) + (self.calls if self.nondeterministic else 0)
        return [" " + WORDS[(start + i) % len(WORDS)] for i in range(count)]

    # -- HTTP ----------------------------------------------------------------------------------------------
    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        chat = request.url.path.endswith("/chat/completions")
        try:
            return self._serve(body, chat)
        except _Reject as exc:
            return httpx.Response(400, json={"error": {"message": exc.message, "type": "invalid_request_error",
                                                       "param": exc.param, "code": None}})

    def _serve(self, body: dict[str, Any], chat: bool) -> httpx.Response:
        for name, defaults in DEFAULTS.items():
            value = body.get(name)
            if value is None or (name == "functions" and not chat) or value in defaults:
                continue
            if self.reject_only_positive and name == "presence_penalty" and value < 0:
                continue
            raise _Reject(f"{name} is not supported", name)
        cleb = body.get("context_length_exceeded_behavior")
        mode = self.overflow
        if cleb is not None:
            if cleb not in ("truncate", "error"):
                raise _Reject("context_length_exceeded_behavior must be truncate or error",
                              "context_length_exceeded_behavior")
            mode = cleb
        prompt_tokens = self._prompt_tokens(body, chat)
        if prompt_tokens >= CONTEXT:
            raise _Reject(f"maximum context length is {CONTEXT} tokens; the prompt has {prompt_tokens}", "prompt")
        room = CONTEXT - prompt_tokens
        max_tokens = body.get("max_tokens", 16)
        if max_tokens > room:
            if mode == "error":
                raise _Reject(f"maximum context length is {CONTEXT} tokens; you requested "
                              f"{prompt_tokens + max_tokens}", "max_tokens")
            limit = room + 1 if self.clamp_over_when_max_tokens_over_context and max_tokens > CONTEXT else room
        else:
            limit = max_tokens
        seed_text = json.dumps(body.get("messages") if chat else body.get("prompt"))
        tokens = self._generate(seed_text, limit)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                 "total_tokens": prompt_tokens + len(tokens)}
        n = int(body.get("n") or 1)
        head = {"id": "cmpl-1", "created": 1, "model": "m"}
        if not body.get("stream"):
            if chat:
                choices: list[dict[str, Any]] = [
                    {"index": i, "message": {"role": "assistant", "content": "".join(tokens)},
                     "finish_reason": "length", "logprobs": None} for i in range(n)]
                return httpx.Response(200, json={**head, "object": "chat.completion", "choices": choices,
                                                 "usage": usage})
            choices = [{"index": i, "text": "".join(tokens), "finish_reason": "length", "logprobs": None}
                       for i in range(n)]
            return httpx.Response(200, json={**head, "object": "text_completion", "choices": choices,
                                             "usage": usage})
        if max_tokens < self.stream_usage_wrong_below:
            usage = {**usage, "completion_tokens": usage["completion_tokens"] + 1,
                     "total_tokens": usage["total_tokens"] + 1}
        chunks = []
        obj = "chat.completion.chunk" if chat else "text_completion"
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            if chat:
                delta = {"role": "assistant", "content": token} if i == 0 else {"content": token}
                choice = {"index": 0, "delta": delta, "finish_reason": "length" if last else None, "logprobs": None}
            else:
                choice = {"index": 0, "text": token, "finish_reason": "length" if last else None, "logprobs": None}
            chunks.append({**head, "object": obj, "choices": [choice], "usage": usage if last else None})
        sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse.encode())

    def drawn(self, key: str, *, where: Any = None) -> set[str]:
        """Distinct values of `key` the requests sent (as JSON), among requests matching `where`."""
        return {json.dumps(r.get(key), sort_keys=True) for r in self.requests
                if key in r and (where is None or where(r))}


class _Reject(Exception):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def run(fake: Fake, names: Iterable[str], profile: str = "fireworks", max_examples: int = 5) -> dict[str, Status]:
    """Run scenarios against the fake: requirement id -> worst status (and the verdicts on `fake.verdicts`)."""
    prof = load_profile(profile)
    catalogue = load_catalogue()
    root = Client(BASE_URL, None, 5.0, Cost(), model="m", cache=True,
                  http=httpx.Client(transport=httpx.MockTransport(fake)))
    verdicts: list[Verdict] = []
    for name in names:
        spec = REGISTRY[name]
        inapplicable = {}
        for rid in spec.covers:
            status, reason = applicability(catalogue[rid], prof)
            if status is not None:
                inapplicable[rid] = reason
        ctx = Context(spec=spec, client=root.fork(), profile=prof, target=TargetInfo(BASE_URL, "m", "m", CONTEXT),
                      max_examples=max_examples, inapplicable=inapplicable)
        verdicts += run_scenario(ctx)
    fake.verdicts = verdicts  # type: ignore[attr-defined]
    order = {Status.FAIL: 6, Status.ERROR: 5, Status.TIMEOUT: 4, Status.PASS: 3, Status.SKIP: 2,
             Status.NOT_APPLICABLE: 1}
    worst: dict[str, Status] = {}
    for v in verdicts:
        if v.requirement not in worst or order[v.status] > order[worst[v.requirement]]:
            worst[v.requirement] = v.status
    return worst


def messages(fake: Fake, rid: str) -> str:
    return "\n".join(f"{v.status.value}: {v.message}" for v in fake.verdicts  # type: ignore[attr-defined]
                     if v.requirement == rid)


MAX_TOKENS_SCENARIOS = ["max_tokens.overflow", "max_tokens.clamp_exact", "max_tokens.prompt_over_context",
                        "max_tokens.context_length_exceeded_behavior"]
STREAM_SCENARIOS = ["stream.completions", "stream.chat", "usage.non_stream"]
PARAM_SCENARIOS = [f"params.{n}" for n in DEFAULTS]


@pytest.mark.parametrize("names", [MAX_TOKENS_SCENARIOS, STREAM_SCENARIOS, PARAM_SCENARIOS],
                         ids=["max_tokens", "stream", "params"])
def test_a_conforming_fake_passes(names: list[str]) -> None:
    fake = Fake()
    got = run(fake, names)
    bad = {rid: s.value for rid, s in got.items()
           if s not in (Status.PASS, Status.NOT_APPLICABLE) and not rid.startswith("schema.")}
    assert not bad, "\n".join(f"{rid}: {messages(fake, rid)}" for rid in bad)
    for rid in ("max_tokens.overflow_clamped", "max_tokens.clamp_arithmetic", "max_tokens.cleb_invalid",
                "stream.equivalence", "usage.stream_matches_non_stream", "params.presence_penalty.rejected",
                "params.best_of.default_accepted"):
        assert rid not in got or got[rid] == Status.PASS, rid


def test_overflow_properties_draw_distinct_prompts_endpoints_and_amounts() -> None:
    fake = Fake()
    run(fake, ["max_tokens.overflow"])
    overflowing = [r for r in fake.requests if r.get("stop") and r.get("max_tokens", 0) > 1]
    assert len({r["max_tokens"] for r in overflowing}) >= 3
    assert len({json.dumps(r.get("prompt") or r.get("messages")) for r in overflowing}) >= 2
    assert {"prompt" in r for r in overflowing} == {True, False}  # both endpoints drawn


def test_clamp_wrong_only_above_the_context_is_caught() -> None:
    """Wrong only when max_tokens itself exceeds the context: the old fixed example (max_tokens = context)
    never saw it; drawn overflow amounts do."""
    fake = Fake(clamp_over_when_max_tokens_over_context=True)
    got = run(fake, ["max_tokens.overflow", "max_tokens.clamp_exact"])
    assert got["max_tokens.overflow_clamped"] == Status.FAIL, messages(fake, "max_tokens.overflow_clamped")
    assert got["max_tokens.clamp_arithmetic"] == Status.FAIL
    failure = next(v for v in fake.verdicts if v.requirement == "max_tokens.clamp_arithmetic"  # type: ignore[attr-defined]
                   and v.status == Status.FAIL)
    assert "[drawn " in failure.message and "overflow=" in failure.message
    assert failure.evidence is not None and failure.evidence.exchanges
    assert "example" in failure.evidence.details


def test_overflow_error_profile_rejects_every_drawn_overflow() -> None:
    fake = Fake(overflow="error")
    got = run(fake, ["max_tokens.overflow"], profile="openai")
    assert got["max_tokens.overflow_rejected"] == Status.PASS
    assert got["max_tokens.error_message"] == Status.PASS
    assert got["max_tokens.overflow_clamped"] == Status.NOT_APPLICABLE
    fake = Fake(overflow="truncate")
    got = run(fake, ["max_tokens.overflow"], profile="openai")
    assert got["max_tokens.overflow_rejected"] == Status.FAIL


def test_streamed_usage_wrong_for_small_max_tokens_is_caught() -> None:
    fake = Fake(stream_usage_wrong_below=8)
    got = run(fake, ["stream.completions"])
    assert got["usage.stream_matches_non_stream"] == Status.FAIL
    assert got["stream.equivalence"] == Status.PASS
    streamed = [r for r in fake.requests if r.get("stream")]
    assert len({r["max_tokens"] for r in streamed}) >= 3
    assert len({r["prompt"] for r in streamed}) >= 2


def test_nondeterministic_endpoint_is_not_applicable_not_failed() -> None:
    fake = Fake(nondeterministic=True)
    got = run(fake, ["stream.completions", "stream.chat"])
    assert got["stream.equivalence"] == Status.NOT_APPLICABLE
    assert got["usage.stream_matches_non_stream"] == Status.NOT_APPLICABLE
    assert any(v.message == NONDETERMINISTIC for v in fake.verdicts)  # type: ignore[attr-defined]
    # the determinism re-check runs once per property, not once per example
    assert sum(1 for r in fake.requests if not r.get("stream")) <= 2 * (5 + 1) + 2


def test_negative_penalty_silently_accepted_is_caught() -> None:
    fake = Fake(reject_only_positive=True)
    got = run(fake, ["params.presence_penalty"], max_examples=10)
    assert got["params.presence_penalty.rejected"] == Status.FAIL, messages(fake, "params.presence_penalty.rejected")
    assert got["params.presence_penalty.default_accepted"] == Status.PASS


def test_param_properties_draw_several_default_forms_and_values() -> None:
    fake = Fake()
    run(fake, ["params.presence_penalty", "params.logit_bias", "params.best_of"], max_examples=8)
    assert len(fake.drawn("presence_penalty")) >= 4  # a few default forms and several non-default values
    assert {"0", "null"} <= fake.drawn("presence_penalty") or {"0.0", "null"} <= fake.drawn("presence_penalty")
    assert len(fake.drawn("logit_bias", where=lambda r: r["logit_bias"])) >= 2
    assert len(fake.drawn("best_of", where=lambda r: r["best_of"] not in (None, 1))) >= 2


def test_max_examples_scales_the_properties() -> None:
    few, many = Fake(), Fake()
    run(few, ["max_tokens.overflow", "params.frequency_penalty"], max_examples=2)
    run(many, ["max_tokens.overflow", "params.frequency_penalty"], max_examples=10)
    assert len(many.requests) > len(few.requests)
    assert len(many.drawn("frequency_penalty")) > len(few.drawn("frequency_penalty"))


def test_an_escaping_error_stops_the_property_without_replay() -> None:
    """A transport failure mid-property ends it at once (no replays, no inconsistent-generation error)."""
    from types import SimpleNamespace

    from hypothesis import strategies as st

    from conformance import strategies as S

    calls: list[int] = []

    def body(data: st.DataObject) -> None:
        calls.append(data.draw(st.integers(0, 100)))
        if len(calls) == 2:
            raise RuntimeError("transport failure")

    with pytest.raises(RuntimeError, match="transport failure"):
        S.run_examples(SimpleNamespace(max_examples=5), body)
    assert len(calls) == 2


def test_exact_clamp_examples_shrink_with_the_context() -> None:
    from conformance.scenarios.max_tokens import clamp_examples

    assert clamp_examples(4, 256) == 2 and clamp_examples(4, 512) == 2  # half the budget on small contexts
    assert clamp_examples(4, 4096) == 1  # one long prompt at a time on larger ones
    assert clamp_examples(40, 4096) == 10  # --max-examples still scales a thorough run
    assert all(clamp_examples(m, c) >= 1 for m in (1, 2, 4, 40) for c in (1, 512, 4096, 10**6))


def test_nondeterminism_is_judged_on_several_reruns() -> None:
    """One re-run that happens to match the baseline must not turn nondeterminism into a failure."""
    from conformance.scenarios._support import REPRODUCE_TRIES, reproduces

    outputs = iter(["a", "b"])  # the first re-run matches by chance, the second does not
    assert not reproduces(lambda: next(outputs), "a")
    calls: list[int] = []
    assert reproduces(lambda: calls.append(1) or "a", "a") and len(calls) == REPRODUCE_TRIES
    calls.clear()
    assert not reproduces(lambda: calls.append(1) or "x", "a") and len(calls) == 1  # stops at the first difference
