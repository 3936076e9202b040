"""Helpers shared by scenarios: requests that validate every payload, accessors, the determinism guard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance import schemas
from conformance.checks.common import clip
from conformance.client import Response, StreamResponse
from conformance.fold import fold_chat_stream, fold_completion_stream
from conformance.results import EndpointError, Status
from conformance.scenario import Context

NONDETERMINISTIC = (
    "the endpoint is not deterministic at temperature 0 (an identical greedy request gave a different output), "
    "so this output comparison is not meaningful; see determinism.greedy_repeatable"
)


def chunk_overlay(ctx: Context, body: dict[str, Any]) -> str | None:
    """Which schema overlay narrows stream chunks for this profile and request."""
    mode = ctx.behaviour("stream.usage")
    if mode == "final_chunk":
        return "fireworks"
    options = body.get("stream_options")
    if mode == "include_usage" and isinstance(options, dict) and options.get("include_usage"):
        return "include_usage"
    return None


def _schema_failure(ctx: Context, req: str, name: str, payload: Any, overlay: str | None, where: str) -> None:
    """Record (once per scenario) a schema.* failure for a payload seen by any scenario: every response and
    chunk is validated, not only in the schema scenarios."""
    errors = schemas.validate(name, payload, overlay=overlay)
    if not errors or not ctx.applies(req):
        return
    if any(v.requirement == req and v.status == Status.FAIL for v in ctx.verdicts):
        return
    label = name + (f" + {overlay} overlay" if overlay else "")
    ctx.record(req, Status.FAIL, f"{where} does not match the {label} schema: {'; '.join(errors[:3])}",
               {"observed": payload, "errors": errors[:20]})


def _check_plain(ctx: Context, response: Response, name: str, req: str) -> None:
    if response.status == 200 and isinstance(response.json, dict):
        _schema_failure(ctx, req, name, response.json, None, f"{name} response")
    elif response.status >= 400 and response.json is not None:
        _schema_failure(ctx, "schema.error", "error", response.json, None, f"HTTP {response.status} error body")


def completion(ctx: Context, *, note: str | None = None, cache: bool = True, **body: Any) -> Response:
    response = ctx.client.completions(note=note, cache=cache, **body)
    _check_plain(ctx, response, "completion", "schema.completion.response")
    return response


def chat(ctx: Context, *, note: str | None = None, cache: bool = True, **body: Any) -> Response:
    response = ctx.client.chat(note=note, cache=cache, **body)
    _check_plain(ctx, response, "chat.completion", "schema.chat.response")
    return response


def _check_stream(ctx: Context, stream: StreamResponse, name: str, req: str, body: dict[str, Any]) -> None:
    if stream.status == 200:
        overlay = chunk_overlay(ctx, body)
        for i, chunk in enumerate(stream.chunks):
            before = len(ctx.verdicts)
            _schema_failure(ctx, req, name, chunk, overlay, f"chunk {i} of {len(stream.chunks)}")
            if len(ctx.verdicts) != before:
                break
    elif stream.error_body is not None:
        _schema_failure(ctx, "schema.error", "error", stream.error_body, None, f"HTTP {stream.status} error body")


def stream_completion(ctx: Context, *, note: str | None = None, **body: Any) -> StreamResponse:
    stream = ctx.client.stream_completions(note=note, **body)
    _check_stream(ctx, stream, "completion.chunk", "schema.completion.chunk", body)
    return stream


def stream_chat(ctx: Context, *, note: str | None = None, **body: Any) -> StreamResponse:
    stream = ctx.client.stream_chat(note=note, **body)
    _check_stream(ctx, stream, "chat.completion.chunk", "schema.chat.chunk", body)
    return stream


def ok(ctx: Context, response: Response, what: str, req: str | None = None) -> dict[str, Any]:
    """The JSON body of a request the scenario depends on; stops the scenario (ERROR) when it failed."""
    if response.status != 200 or not isinstance(response.json, dict):
        raise EndpointError(
            req or ctx.spec.covers[0],
            f"{what}: a valid request got HTTP {response.status}: {clip(response.json or response.text)}",
            observed=response.status, expected=200,
        )
    return response.json


def choice(ctx: Context, body: dict[str, Any], index: int = 0) -> dict[str, Any]:
    choices = body.get("choices")
    if not isinstance(choices, list) or len(choices) <= index or not isinstance(choices[index], dict):
        raise EndpointError(ctx.spec.covers[0], f"response has no choices[{index}]: {clip(body)}",
                            observed=body, expected=f"choices[{index}]")
    return choices[index]


def text(ctx: Context, body: dict[str, Any], index: int = 0) -> str:
    """choices[i].text (completions) or choices[i].message.content (chat), as a string."""
    c = choice(ctx, body, index)
    if "message" in c:
        content = (c.get("message") or {}).get("content")
        return content if isinstance(content, str) else ""
    value = c.get("text")
    if not isinstance(value, str):
        raise EndpointError(ctx.spec.covers[0], f"choices[{index}].text is {value!r}", observed=value,
                            expected="a string")
    return value


def finish(ctx: Context, body: dict[str, Any], index: int = 0) -> Any:
    return choice(ctx, body, index).get("finish_reason")


def folded(stream: StreamResponse, chat_stream: bool) -> dict[str, Any]:
    return fold_chat_stream(stream.chunks) if chat_stream else fold_completion_stream(stream.chunks)


def folded_text(stream: StreamResponse, chat_stream: bool, index: int = 0) -> tuple[str, Any]:
    out = folded(stream, chat_stream)
    for c in out["choices"]:
        if c["index"] == index:
            value = c["message"]["content"] if chat_stream else c["text"]
            return value or "", c["finish_reason"]
    return "", None


class Oracle:
    """The greedy baseline of one request body, with a once-per-scenario determinism re-check."""

    def __init__(self, ctx: Context, chat_endpoint: bool, **body: Any) -> None:
        self.ctx = ctx
        self.chat = chat_endpoint
        self.body = {"temperature": 0, **body}
        self.response = self._request(cache=True, note="greedy baseline")
        self.json = ok(ctx, self.response, "greedy baseline")
        self.text = text(ctx, self.json)
        self.finish = finish(ctx, self.json)
        self.usage = self.json.get("usage")
        self._deterministic: bool | None = None

    def _request(self, cache: bool, note: str, **extra: Any) -> Response:
        call = chat if self.chat else completion
        return call(self.ctx, note=note, cache=cache, **{**self.body, **extra})

    def request(self, note: str, **extra: Any) -> Response:
        """The baseline body plus `extra` (e.g. stop=...)."""
        return self._request(cache=True, note=note, **extra)

    def deterministic(self) -> bool:
        """Re-request the baseline (uncached, see `reproduces`): does it reproduce? Call only when a comparison failed."""
        if self._deterministic is None:
            def again() -> str | None:
                r = self._request(cache=False, note="re-run of the greedy baseline (determinism check)")
                return text(self.ctx, r.json) if r.status == 200 and isinstance(r.json, dict) else None

            self._deterministic = reproduces(again, self.text)
        return self._deterministic


REPRODUCE_TRIES = 3


def reproduces(rerun: Callable[[], Any], expected: Any, tries: int = REPRODUCE_TRIES) -> bool:
    """Whether re-running a greedy request gives `expected` every time, up to `tries` runs (stopping at the
    first difference). On an endpoint that is not deterministic but has few distinct outputs, one re-run can
    match by chance and turn nondeterminism into a false failure; three in a row rarely do."""
    return all(rerun() == expected for _ in range(tries))


# -- helpers for Hypothesis properties (conformance/strategies.py run_examples) ---------------------------


def describe(example: dict[str, Any]) -> str:
    """A short, stable label for the inputs one property example drew."""
    from conformance.checks.common import clip as _clip

    return ", ".join(f"{k}={_clip(v, 80)}" for k, v in example.items())


def verify_drawn(ctx: Context, example: dict[str, Any], requirement: str, check: Any, *args: Any,
                 **kwargs: Any) -> bool:
    """ctx.verify for one drawn example: a failure's message starts with the drawn inputs, and its details
    carry them (`example`), so the evidence says which example failed, not only which requests were made."""
    from conformance.results import CheckFailure

    def labelled(*a: Any, **k: Any) -> None:
        try:
            check(*a, **k)
        except CheckFailure as failure:
            failure.message = f"[drawn {describe(example)}] {failure.message}"
            failure.details.setdefault("example", example)
            raise

    return ctx.verify(requirement, labelled, *args, **kwargs)


class DeterminismMemo:
    """Across the examples of one property: once the endpoint has shown it is not deterministic at temperature 0,
    differing outputs are reported as NONDETERMINISTIC without re-checking every example's baseline."""

    def __init__(self) -> None:
        self.nondeterministic = False

    def explains(self, oracle: Oracle, same: bool) -> bool:
        """True when a comparison that came out different (`same` False) is explained by nondeterminism."""
        if same:
            return False
        if not self.nondeterministic and not oracle.deterministic():
            self.nondeterministic = True
        return self.nondeterministic
