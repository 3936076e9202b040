"""Orchestration: run every axis inference against one endpoint, on a budget of at most 25 requests.

    result = probe_endpoint(ProbeConfig(base_url="http://127.0.0.1:8000/v1"))   # standalone
    result = run_probe(client, context_length)                                   # with a run's client

Requests, typically 19-22 (the reference server and the fakes), at most 23 by design: GET /models
(standalone only), greedy baseline + up to 3 uncached repeats (determinism), up to 2 completion stops +
1 chat stop (the chat baseline is shared with functions), overflow + its
context_length_exceeded_behavior switch, 2 streams (usage placement, [DONE]), penalty baseline +
2 penalties, best_of (1-2), logit_bias, functions (1, plus the same function as `tools` when
functions are accepted without visible effect), defaults. MAX_REQUESTS (25, GET /models included)
is a hard cap above that worst case: a request past it stops the probe (`ProbeResult.error`).
Responses a run's client serves from its greedy cache are not requests and do not count.

A timeout or an unreachable endpoint aborts the probe (`ProbeResult.error`); other transport
failures only make the axis concerned unknown.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conformance import strategies as S
from conformance.client import Client, Response, StreamResponse, TransportFailure
from conformance.probe import axes
from conformance.probe.evidence import UNKNOWN, Inference
from conformance.profiles import AXES
from conformance.results import Cost, Exchange, Status
from conformance.scenarios._support import REPRODUCE_TRIES

MAX_REQUESTS = 25  # hard cap per probe, GET /models included; the plan needs at most 23


class ProbeAborted(Exception):
    """The endpoint timed out or cannot be reached: the probe stops."""


@dataclass
class ProbeResult:
    base_url: str
    model: str | None
    chat_model: str | None
    context_length: int | None
    date: str
    axes: dict[str, Inference] = field(default_factory=dict)  # every axis of AXES, in AXES order
    observations: dict[str, Inference] = field(default_factory=dict)  # [DONE], determinism, defaults
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # the probe stopped early (remaining axes are unknown)

    @property
    def behaviour(self) -> dict[str, str]:
        return {axis: inference.value for axis, inference in self.axes.items()}

    @property
    def unknown_axes(self) -> list[str]:
        return [axis for axis, inference in self.axes.items() if not inference.inferred]


class ProbeSession:
    """The client plus the shared greedy baselines the axis functions reuse (each fetched once)."""

    def __init__(self, client: Client, context_length: int | None, spent: int = 0) -> None:
        self.client = client
        self.context_length = context_length
        self.facts: dict[str, Any] = {}
        self.start = len(client.exchanges)
        self.spent = spent  # requests made before the session (GET /models), counted against MAX_REQUESTS
        self.baseline_body: dict[str, Any] = {"prompt": S.PROMPT, "max_tokens": S.MAX_TOKENS, "temperature": 0}
        self.chat_body: dict[str, Any] = {"messages": axes.CHAT_MESSAGES, "max_tokens": S.MAX_TOKENS,
                                          "temperature": 0}

    # -- requests: None on a transport failure (recorded), ProbeAborted on a timeout -----------------
    def _call(self, fn: Callable[..., Any], *, streamed: bool = False, **kwargs: Any) -> Any:
        if self.spent + real_requests(self.client.exchanges[self.start:]) >= MAX_REQUESTS:
            raise ProbeAborted(f"request budget of {MAX_REQUESTS} spent")
        try:
            return fn(**kwargs)
        except TransportFailure as exc:
            # A hung plain request or an unreachable endpoint stops the probe (each further request would
            # wait as long); a stream that stalls or breaks only makes the streaming axis unknown.
            if str(exc).startswith("cannot connect") or (exc.status == Status.TIMEOUT and not streamed):
                raise ProbeAborted(str(exc)) from None
            return None

    def completion(self, note: str, cache: bool = True, **body: Any) -> Response | None:
        result: Response | None = self._call(self.client.completions, note=f"probe: {note}", cache=cache, **body)
        return result

    def chat(self, note: str, cache: bool = True, **body: Any) -> Response | None:
        result: Response | None = self._call(self.client.chat, note=f"probe: {note}", cache=cache, **body)
        return result

    def stream(self, note: str, **body: Any) -> StreamResponse | None:
        result: StreamResponse | None = self._call(self.client.stream_completions, streamed=True,
                                                    note=f"probe: {note}", **body)
        return result

    # -- evidence bookkeeping ------------------------------------------------------------------------
    def mark(self) -> int:
        return len(self.client.exchanges)

    def since(self, mark: int) -> list[Exchange]:
        return list(self.client.exchanges[mark:])

    def shared(self, *names: str) -> list[Exchange]:
        out = []
        for name in names:
            resp = self.facts.get(name)
            if resp is not None and getattr(resp, "exchange", None) is not None:
                out.append(resp.exchange)
        return out

    # -- shared facts ---------------------------------------------------------------------------------
    def _fact(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self.facts:
            self.facts[name] = make()
        return self.facts[name]

    def baseline(self) -> Response | None:
        result: Response | None = self._fact("baseline", lambda: self.completion("greedy baseline",
                                                                                 **self.baseline_body))
        return result

    def chat_baseline(self) -> Response | None:
        result: Response | None = self._fact("chat_baseline", lambda: self.chat("greedy chat baseline",
                                                                                **self.chat_body))
        return result

    def penalty_baseline(self) -> Response | None:
        result: Response | None = self._fact("penalty_baseline", lambda: self.completion(
            "greedy baseline on a repetitive prompt", prompt=axes.PENALTY_PROMPT, max_tokens=axes.PENALTY_TOKENS, temperature=0))
        return result

    def deterministic(self) -> bool:
        """The greedy baseline re-requested without the cache gives the same text every time, up to
        REPRODUCE_TRIES re-runs stopping at the first difference (True when unknown): one re-run can match
        by chance on an endpoint with few distinct outputs."""
        first = axes.text_of(axes.body_of(self.baseline()))
        for name in self.repeat_names():
            repeat = self._fact(name, lambda: self.completion(
                "greedy baseline again, uncached (determinism)", cache=False, **self.baseline_body))
            second = axes.text_of(axes.body_of(repeat))
            if first is None or second is None:
                return True
            if first != second:
                return False
        return True

    @staticmethod
    def repeat_names() -> list[str]:
        """Fact names of the baseline's re-runs, in order."""
        return ["baseline_repeat"] + [f"baseline_repeat_{i}" for i in range(2, REPRODUCE_TRIES + 1)]


def run_probe(client: Client, context_length: int | None, *, base_url: str | None = None,
              spent: int = 0) -> ProbeResult:
    """Infer every axis with `client` (a fork of a run's client is fine: its requests add to the run's cost).
    `spent`: requests already made for this probe (GET /models), counted in the cap and in `requests`.
    Never raises for endpoint behaviour; ProbeResult.error says why it stopped early."""
    session = ProbeSession(client, context_length, spent)
    date = _dt.datetime.now(_dt.timezone.utc).date().isoformat()
    result = ProbeResult(client.redactor.text(base_url or client.base_url), client.model, client.chat_model,
                         context_length, date)
    steps: list[tuple[str, Callable[[], Inference]]] = [
        ("determinism.temperature_0", lambda: axes.determinism(session)),
        ("stop.output", lambda: axes.stop_output(session)),
        ("max_tokens.overflow", lambda: axes.overflow(session)),
        ("max_tokens.context_length_exceeded_behavior",
         lambda: axes.context_length_exceeded_behavior(session, result.axes["max_tokens.overflow"])),
        ("stream.usage", lambda: axes.stream_usage(session)),
        ("stream.done", lambda: axes.done_marker(session)),
        ("params.presence_penalty", lambda: axes.penalty(session, "presence_penalty")),
        ("params.frequency_penalty", lambda: axes.penalty(session, "frequency_penalty")),
        ("params.best_of", lambda: axes.best_of(session)),
        ("params.logit_bias", lambda: axes.logit_bias(session)),
        ("params.functions", lambda: axes.functions(session)),
        ("params.defaults", lambda: axes.defaults_accepted(session)),
    ]
    for name, step in steps:
        if result.error is None:
            try:
                inference = step()
            except ProbeAborted as exc:
                result.error = client.redactor.text(f"probe stopped at {name}: {exc}")
                inference = _skipped(name, result.error)
            except Exception as exc:  # a probe bug must never break a run
                inference = _skipped(name, f"probe error: {type(exc).__name__}: {exc}")
        else:
            inference = _skipped(name, "not probed: " + result.error)
        (result.axes if name in AXES else result.observations)[name] = inference
    result.axes = {axis: result.axes[axis] for axis in AXES}
    made = client.exchanges[session.start:]
    result.requests = session.spent + real_requests(made)
    result.prompt_tokens, result.completion_tokens = tokens_of(made)
    return result


def real_requests(exchanges: list[Exchange]) -> int:
    """Requests really sent (responses served from the run's greedy cache are not)."""
    return sum(1 for e in exchanges if not (e.note and "(cached" in e.note))


def tokens_of(exchanges: list[Exchange]) -> tuple[int, int]:
    """(prompt, completion) tokens reported by the usage of real (uncached) exchanges."""
    prompt = completion = 0
    for e in exchanges:
        if (e.note and "(cached" in e.note) or e.response is None:
            continue
        usages: list[Any] = []
        if isinstance(e.response.body, dict):
            usages.append(e.response.body.get("usage"))
        for event in e.response.events or []:
            if '"usage"' in event:
                with contextlib.suppress(ValueError, AttributeError):
                    usages.append(json.loads(event).get("usage"))
        for usage in usages:
            if isinstance(usage, dict):
                p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
                prompt += p if isinstance(p, int) else 0
                completion += c if isinstance(c, int) else 0
    return prompt, completion


def _skipped(name: str, reason: str) -> Inference:
    if name in AXES:
        return axes.unknown(name, reason)
    return Inference(name, "unknown", UNKNOWN, reason)


@dataclass
class ProbeConfig:
    base_url: str
    api_key: str | None = None
    model: str | None = None
    chat_model: str | None = None
    context_length: int | None = None
    timeout: float = 60.0


def probe_endpoint(config: ProbeConfig) -> ProbeResult:
    """Discover the model and context length (GET /models), then probe. Raises runner.Unreachable."""
    from conformance.runner import RunConfig, discover

    client = Client(config.base_url, config.api_key, config.timeout, Cost(), model=config.model,
                    chat_model=config.chat_model)
    try:
        found = discover(client, RunConfig(base_url=config.base_url, api_key=config.api_key, model=config.model,
                                           chat_model=config.chat_model, context_length=config.context_length))
        client.model, client.chat_model = found.model, found.chat_model
        # GET /models counts towards the cap and the reported requests
        return run_probe(client, found.context_length, base_url=config.base_url,
                         spent=real_requests(client.exchanges))
    finally:
        client.close()
