"""One inference function per behaviour axis (and per extra observation).

Each takes the probe session (`conformance.probe.infer.ProbeSession`: the client, shared greedy
baselines, the context length) and returns an `Inference`: the value to write, whether it was
really inferred, a one-line reason and the exchanges it rests on. When an axis cannot be inferred,
the value is the OpenAI profile's and the status says why (`unknown` / `inconsistent`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conformance import strategies as S
from conformance.client import Response, StreamResponse
from conformance.probe.evidence import INCONSISTENT, INFERRED, UNKNOWN, Inference, divergence, one_line
from conformance.profiles import load_profile

if TYPE_CHECKING:
    from conformance.probe.infer import ProbeSession

BIAS_TOKEN = "100"  # an ordinary token id in common vocabularies (as the params scenario uses)
PENALTY = 2.0  # the largest value OpenAI accepts: the most visible effect
PENALTY_PROMPT = S.repeat_word_prompt("the", 5)  # invites a repetitive greedy continuation
SHORT = 8  # max_tokens of the cheap requests
PENALTY_TOKENS = 32  # long enough for a greedy continuation to repeat a token
CHAT_MESSAGES = S.CHAT_MESSAGES
FUNCTIONS: list[dict[str, Any]] = [{
    "name": "get_weather", "description": "Get the weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]


def openai_value(axis: str) -> str:
    return load_profile("openai").behaviour[axis]


def unknown(axis: str, reason: str, exchanges: list[Any] | None = None, status: str = UNKNOWN) -> Inference:
    return Inference(axis, openai_value(axis), status, one_line(reason, 300), exchanges=list(exchanges or []))


# -- response accessors (tolerant: the probe never raises on a malformed body) ---------------------


def body_of(resp: Response | None) -> dict[str, Any] | None:
    if resp is None or resp.status != 200 or not isinstance(resp.json, dict):
        return None
    return resp.json


def choices_of(body: dict[str, Any] | None) -> list[dict[str, Any]]:
    choices = (body or {}).get("choices")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def text_of(body: dict[str, Any] | None) -> str | None:
    choices = choices_of(body)
    if not choices:
        return None
    first = choices[0]
    if isinstance(first.get("message"), dict):
        content = first["message"].get("content")
        return content if isinstance(content, str) else ""
    value = first.get("text")
    return value if isinstance(value, str) else None


def finish_of(body: dict[str, Any] | None) -> Any:
    choices = choices_of(body)
    return choices[0].get("finish_reason") if choices else None


def usage_of(body: dict[str, Any] | None, key: str) -> int | None:
    usage = (body or {}).get("usage")
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def error_of(resp: Response | StreamResponse | None) -> dict[str, Any]:
    """The `error` object of a 4xx/5xx body (empty when there is none)."""
    if resp is None:
        return {}
    body = resp.json if isinstance(resp, Response) else resp.error_body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    if isinstance(body, dict) and "detail" in body:  # FastAPI-style validation error
        return {"message": str(body["detail"])}
    return {}


def names_param(resp: Response | StreamResponse | None, param: str) -> bool:
    """A 4xx whose error names `param` (in `param`, or in the message)."""
    if resp is None or not 400 <= resp.status < 500:
        return False
    err = error_of(resp)
    text = resp.text if isinstance(resp, Response) else (resp.text or "")
    return err.get("param") == param or param in str(err.get("message", "")) or (not err and param in text)


def describe(resp: Response | None) -> str:
    if resp is None:
        return "no response (transport failure)"
    err = error_of(resp)
    if err:
        return one_line(f"HTTP {resp.status} {err.get('code') or ''} {err.get('message', '')}", 160)
    return f"HTTP {resp.status}"


# -- stop.output ------------------------------------------------------------------------------


def pick_stops(text: str) -> list[str]:
    """Up to two stop sequences from a greedy output, each occurring exactly once and not at its very
    start or end: one aligned on a word, one ending inside a word (the harder case for an endpoint)."""
    unique = [s for s in S.substrings(text, 6) if s == s.strip() and text.count(s) == 1
              and text.find(s) >= 2 and text.find(s) + len(s) < len(text)]
    target = len(text) // 3

    def rank(s: str) -> tuple[int, int]:
        return abs(text.find(s) - target), -len(s)

    words = [s for s in unique if text[text.find(s) - 1] == " " and
             not (text.find(s) + len(s) < len(text) and text[text.find(s) + len(s)].isalnum())]
    mid = set(S.mid_token_candidates(text, None, 6)) & set(unique)
    picked: list[str] = []
    if words:
        picked.append(min(words, key=rank))
    target = 2 * len(text) // 3
    if mid:
        picked.append(min(mid, key=rank))
    if not picked and unique:
        picked.append(min(unique, key=rank))
    return picked


def judge_stop(baseline: str, stop: str, body: dict[str, Any] | None) -> tuple[str | None, str]:
    """include / exclude / None for one re-request with `stop`, with a one-line reason."""
    got = text_of(body)
    if got is None:
        return None, "no text in the response"
    at = baseline.find(stop)
    if got == baseline[: at + len(stop)]:
        return "include", f"stop {stop!r}: text ends with it, cut where the baseline has it"
    if got == baseline[:at]:
        return "exclude", f"stop {stop!r}: text cut just before it"
    if got.endswith(stop) and got.find(stop) == len(got) - len(stop):
        return "include", f"stop {stop!r}: text ends with it (cut point differs from the baseline)"
    if stop not in got and finish_of(body) == "stop":
        return "exclude", f"stop {stop!r}: absent from the text, finish_reason stop (cut point differs from the baseline)"
    return None, f"stop {stop!r}: text {one_line(repr(got), 60)} matches neither inclusion nor exclusion"


def stop_output(p: ProbeSession) -> Inference:
    axis = "stop.output"
    mark = p.mark()
    base = p.baseline()
    shared = p.shared("baseline")
    baseline = text_of(body_of(base))
    if baseline is None:
        return unknown(axis, f"greedy baseline failed: {describe(base)}", shared)
    verdicts: list[tuple[str | None, str]] = []
    stops = pick_stops(baseline)
    if not stops:
        return unknown(axis, f"greedy output {baseline!r} offers no usable stop sequence", shared)
    for stop in stops:
        resp = p.completion(f"stop {stop!r} picked from the greedy baseline", **p.baseline_body, stop=[stop])
        verdicts.append(judge_stop(baseline, stop, body_of(resp)) if resp is not None and resp.status == 200
                        else (None, f"stop {stop!r}: {describe(resp)}"))
    chat = p.chat_baseline()
    chat_text = text_of(body_of(chat))
    chat_stops = pick_stops(chat_text) if chat_text else []
    if chat_stops:
        stop = chat_stops[0]
        resp = p.chat(f"chat: stop {stop!r} picked from the greedy chat baseline", **p.chat_body, stop=[stop])
        verdict, why = (judge_stop(chat_text or "", stop, body_of(resp)) if resp is not None and resp.status == 200
                        else (None, f"stop {stop!r}: {describe(resp)}"))
        verdicts.append((verdict, f"chat {why}"))
    exchanges = p.shared("baseline", "chat_baseline") + p.since(mark)
    seen = {v for v, _ in verdicts if v is not None}
    reasons = "; ".join(why for _, why in verdicts)
    if len(seen) == 1:
        value = seen.pop()
        caveat = "" if all(v is not None for v, _ in verdicts) else "some stops were inconclusive"
        if not p.deterministic():
            caveat = "; ".join(filter(None, [caveat, "endpoint not deterministic at temperature 0"]))
        return Inference(axis, value, INFERRED, one_line(reasons, 300), caveat, exchanges)
    if len(seen) > 1:
        return unknown(axis, f"inconsistent: {reasons}", exchanges, INCONSISTENT)
    extra = " (the endpoint is not deterministic at temperature 0)" if not p.deterministic() else ""
    return unknown(axis, f"{reasons}{extra}", exchanges)


# -- max_tokens ---------------------------------------------------------------------------------


def _overflow_body(p: ProbeSession) -> dict[str, Any]:
    assert p.context_length is not None
    return {"prompt": S.PROMPT, "max_tokens": p.context_length, "temperature": 0, "stop": S.GUARD_STOPS}


def _is_context_error(resp: Response) -> bool:
    err = error_of(resp)
    text = f"{err.get('code')} {err.get('message')} {err.get('type')}".lower()
    return resp.status == 400 and ("context" in text or "maximum" in text or "too long" in text
                                   or "max_tokens" in text)


def overflow(p: ProbeSession) -> Inference:
    axis = "max_tokens.overflow"
    if p.context_length is None:
        return unknown(axis, "context length unknown (/models reports none; pass --context-length)")
    mark = p.mark()
    ctx = p.context_length
    prompt_tokens = usage_of(body_of(p.baseline()), "prompt_tokens")
    over = f"max_tokens {ctx} + prompt ({prompt_tokens if prompt_tokens is not None else '?'} tokens) > context {ctx}"
    resp = p.completion(f"overflow: {over} (guard stops keep it cheap)", **_overflow_body(p))
    p.facts["overflow"] = resp
    exchanges = p.since(mark)
    if resp is None:
        return unknown(axis, "overflowing request failed (transport)", exchanges)
    if resp.status == 200:
        used = usage_of(body_of(resp), "completion_tokens")
        return Inference(axis, "truncate", INFERRED, f"{over}: HTTP 200 (max_tokens clamped; "
                         f"completion_tokens {used})", exchanges=exchanges)
    if _is_context_error(resp):
        return Inference(axis, "error", INFERRED, f"{over}: {describe(resp)}", exchanges=exchanges)
    if 400 <= resp.status < 500:
        return Inference(axis, "error", INFERRED, f"{over}: {describe(resp)}",
                         "the error does not name the context window", exchanges)
    return unknown(axis, f"{over}: {describe(resp)}", exchanges)


def context_length_exceeded_behavior(p: ProbeSession, overflow_inference: Inference) -> Inference:
    axis = "max_tokens.context_length_exceeded_behavior"
    param = "context_length_exceeded_behavior"
    if not overflow_inference.inferred:
        return unknown(axis, "the default overflow behaviour is unknown, so a switch cannot be seen")
    mark = p.mark()
    default = overflow_inference.value
    opposite = "error" if default == "truncate" else "truncate"
    body: dict[str, Any] = {**_overflow_body(p), param: opposite}
    resp = p.completion(f"overflow with {param}={opposite} (default behaviour: {default})", **body)
    exchanges = p.shared("overflow") + p.since(mark)
    if resp is None:
        return unknown(axis, "request failed (transport)", exchanges)
    if 400 <= resp.status < 500 and names_param(resp, param) and not _is_context_error(resp):
        return Inference(axis, "ignored", INFERRED, f"{param}={opposite} rejected as a parameter: {describe(resp)}",
                         "the parameter itself is refused, so it cannot switch anything", exchanges)
    switched = (resp.status == 200) if opposite == "truncate" else (400 <= resp.status < 500)
    observed = "HTTP 200 (clamped)" if resp.status == 200 else describe(resp)
    if switched:
        return Inference(axis, "honoured", INFERRED, f"{param}={opposite} switched the overflow behaviour: "
                         f"{observed}", exchanges=exchanges)
    if resp.status == 200 or 400 <= resp.status < 500:
        return Inference(axis, "ignored", INFERRED, f"{param}={opposite} changed nothing: {observed}",
                         exchanges=exchanges)
    return unknown(axis, f"{param}={opposite}: {observed}", exchanges)


# -- streaming ----------------------------------------------------------------------------------


def _finish_chunk(stream: StreamResponse) -> dict[str, Any] | None:
    for chunk in stream.chunks:
        for c in chunk.get("choices") or []:
            if isinstance(c, dict) and c.get("finish_reason") is not None:
                return chunk
    return None


def _usage_chunks(stream: StreamResponse) -> list[dict[str, Any]]:
    return [c for c in stream.chunks if isinstance(c.get("usage"), dict) and c["usage"]]


def stream_usage(p: ProbeSession) -> Inference:
    axis = "stream.usage"
    mark = p.mark()
    body = {"prompt": S.PROMPT, "max_tokens": SHORT, "temperature": 0}
    plain = p.stream("stream without stream_options", **body)
    with_opt = p.stream("stream with stream_options.include_usage", **body,
                        stream_options={"include_usage": True})
    p.facts["streams"] = [s for s in (plain, with_opt) if s is not None]
    exchanges = p.since(mark)
    if plain is None or plain.status != 200:
        return unknown(axis, f"plain stream failed: {describe_stream(plain)}", exchanges)
    final = _finish_chunk(plain)
    on_final = final is not None and isinstance(final.get("usage"), dict) and bool(final["usage"])
    plain_usage = len(_usage_chunks(plain))
    if on_final and plain_usage == 1:
        return Inference(axis, "final_chunk", INFERRED, "without stream_options, usage is on the chunk carrying "
                         "finish_reason (and on no other chunk)", exchanges=exchanges)
    plain_extra = [c for c in _usage_chunks(plain) if not c.get("choices")]
    extra = ([c for c in _usage_chunks(with_opt) if not c.get("choices")]
             if with_opt is not None and with_opt.status == 200 else [])
    if extra:
        # An endpoint that sends usage everywhere (a defect) but answers include_usage with the extra
        # chunk: include_usage is the placement it implements, so a run checks (and fails) that profile's
        # "usage null elsewhere" rather than a placement it never chose.
        caveat = f"usage is also sent without stream_options (on {plain_usage} chunk(s))" if plain_usage else ""
        return Inference(axis, "include_usage", INFERRED, "with include_usage an extra chunk with empty choices "
                         "carries usage" + ("" if plain_usage else "; none without stream_options"), caveat,
                         exchanges)
    if on_final:
        return Inference(axis, "final_chunk", INFERRED, "without stream_options, usage is on the chunk carrying "
                         "finish_reason", f"usage also on {plain_usage - 1} other chunk(s)", exchanges)
    if with_opt is not None and with_opt.status == 200:
        where = "anywhere" if not _usage_chunks(with_opt) else "only on chunks that also carry choices"
        return Inference(axis, "none", INFERRED, f"usage not on the finish chunk, and with include_usage not "
                         f"{where}", exchanges=exchanges)
    if plain_extra:
        return Inference(axis, "include_usage", INFERRED, "usage arrives in an extra chunk with empty choices",
                         f"stream_options rejected: {describe_stream(with_opt)}", exchanges)
    return Inference(axis, "none", INFERRED, "no usage in the stream", f"stream_options.include_usage: "
                     f"{describe_stream(with_opt)}", exchanges)


def describe_stream(stream: StreamResponse | None) -> str:
    if stream is None:
        return "no response (transport failure)"
    if stream.status == 200:
        return f"HTTP 200, {len(stream.chunks)} chunks"
    err = error_of(stream)
    return one_line(f"HTTP {stream.status} {err.get('message', '') if err else stream.text}", 160)


# -- options the seed lists as unsupported -------------------------------------------------------


def _rejected(name: str, resp: Response, exchanges: list[Any]) -> Inference:
    return Inference(f"params.{name}", "rejected", INFERRED, f"non-default {name}: {describe(resp)}",
                     exchanges=exchanges)


def _not_served(name: str, resp: Response | None, exchanges: list[Any]) -> Inference | None:
    """rejected / unknown when the non-default request was not a 200; None when it was."""
    if resp is None:
        return unknown(f"params.{name}", "request failed (transport)", exchanges)
    if resp.status == 200:
        return None
    if names_param(resp, name):
        return _rejected(name, resp, exchanges)
    return unknown(f"params.{name}", f"non-default {name}: {describe(resp)} (does not name {name})", exchanges)


def penalty(p: ProbeSession, name: str) -> Inference:
    axis = f"params.{name}"
    mark = p.mark()
    base = p.penalty_baseline()
    body: dict[str, Any] = {"prompt": PENALTY_PROMPT, "max_tokens": PENALTY_TOKENS, "temperature": 0, name: PENALTY}
    resp = p.completion(f"{name}={PENALTY} on a repetitive prompt", **body)
    exchanges = p.shared("penalty_baseline") + p.since(mark)
    failed = _not_served(name, resp, exchanges)
    if failed is not None:
        return failed
    before, after = text_of(body_of(base)), text_of(body_of(resp))
    if before is None:
        return unknown(axis, f"accepted (HTTP 200), but the baseline without {name} failed: {describe(base)}",
                       exchanges)
    if before != after:
        if not p.deterministic():
            return unknown(axis, f"{name}={PENALTY} accepted and the output changed, but the endpoint is not "
                           "deterministic at temperature 0", exchanges)
        return Inference(axis, "supported", INFERRED, f"{name}={PENALTY} changed the greedy output "
                         f"({divergence(before, after or '')})", exchanges=exchanges)
    return Inference(axis, "ignored", INFERRED, f"{name}={PENALTY} accepted, no observable effect (greedy output "
                     "unchanged on a repetitive prompt)", "could also be supported but ineffective on this prompt",
                     exchanges)


def logit_bias(p: ProbeSession) -> Inference:
    axis = "params.logit_bias"
    mark = p.mark()
    resp = p.completion(f"logit_bias +100 on token {BIAS_TOKEN}", prompt=S.PROMPT, max_tokens=SHORT,
                        temperature=0, logit_bias={BIAS_TOKEN: 100})
    exchanges = p.since(mark)
    failed = _not_served("logit_bias", resp, exchanges)
    if failed is not None:
        return failed
    body = body_of(resp)
    got = text_of(body) or ""
    tokens = usage_of(body, "completion_tokens") or SHORT
    unit = got[: len(got) // tokens] if tokens and got and len(got) % tokens == 0 else ""
    if unit and unit * tokens == got:
        return Inference(axis, "supported", INFERRED, f"+100 on token {BIAS_TOKEN}: the output is one string "
                         f"repeated {tokens} times ({unit!r})", exchanges=exchanges)
    baseline = text_of(body_of(p.baseline())) or ""
    exchanges = p.shared("baseline") + exchanges
    if baseline.startswith(got) and got:
        return Inference(axis, "ignored", INFERRED, f"+100 on token {BIAS_TOKEN} accepted, no observable effect "
                         "(output is the unbiased greedy output)", exchanges=exchanges)
    if p.deterministic():
        return Inference(axis, "supported", INFERRED, f"+100 on token {BIAS_TOKEN} changed the greedy output to "
                         f"{one_line(repr(got), 40)}", "but not into one repeated token", exchanges)
    return unknown(axis, "accepted; output changed but the endpoint is not deterministic", exchanges)


def best_of(p: ProbeSession) -> Inference:
    axis = "params.best_of"
    mark = p.mark()
    body: dict[str, Any] = {"prompt": S.PROMPT, "max_tokens": 4, "temperature": 0}
    resp = p.completion("best_of 2, n 1", **body, best_of=2, n=1)
    failed = _not_served("best_of", resp, p.since(mark))
    if failed is not None:
        return failed
    assert resp is not None
    count = len(choices_of(body_of(resp)))
    below = p.completion("best_of 2 < n 3 (an implementation must refuse it)", **body, best_of=2, n=3)
    exchanges = p.since(mark)
    if below is not None and 400 <= below.status < 500 and names_param(below, "best_of"):
        caveat = "" if count == 1 else f"best_of 2, n 1 returned {count} choices"
        return Inference(axis, "supported", INFERRED, f"best_of 2, n 1 returned {count} choice(s); best_of < n "
                         f"refused: {describe(below)}", caveat, exchanges)
    if below is not None and below.status == 200:
        return Inference(axis, "ignored", INFERRED, f"best_of 2 accepted, no observable effect ({count} choice(s) "
                         "for n 1; best_of 2 < n 3 accepted too)", exchanges=exchanges)
    return unknown(axis, f"best_of 2 accepted; best_of < n: {describe(below)}", exchanges)


def _called(body: dict[str, Any] | None) -> bool:
    """The model answered with a function or tool call."""
    first = choices_of(body)[0] if choices_of(body) else {}
    message: dict[str, Any] = first["message"] if isinstance(first.get("message"), dict) else {}
    return bool(message.get("function_call") or message.get("tool_calls")
                or first.get("finish_reason") in ("function_call", "tool_calls"))


def functions(p: ProbeSession) -> Inference:
    """rejected: a 4xx naming functions. supported: the model called one, or the functions reached its
    prompt (usage.prompt_tokens grew over the same chat request without them). Otherwise the same
    function is sent as `tools`, as a control: if tools grow prompt_tokens but functions did not, the
    endpoint drops functions (ignored); if neither does, its chat template renders no tool definitions
    at all, so supported and ignored look alike to every client: supported is written (its requirement,
    accepted with a valid chat response, is what was observed), with a caveat."""
    axis = "params.functions"
    mark = p.mark()
    base = p.chat_baseline()
    resp = p.chat("chat with functions", **p.chat_body, functions=FUNCTIONS)
    exchanges = p.shared("chat_baseline") + p.since(mark)
    failed = _not_served("functions", resp, exchanges)
    if failed is not None:
        return failed
    body = body_of(resp)
    if _called(body):
        return Inference(axis, "supported", INFERRED, "functions accepted and the model called one",
                         exchanges=exchanges)
    with_fn, without = usage_of(body, "prompt_tokens"), usage_of(body_of(base), "prompt_tokens")
    if with_fn is None or without is None:
        why = "the chat baseline failed: " + describe(base) if body_of(base) is None else "no usage.prompt_tokens"
        return unknown(axis, f"functions accepted (HTTP 200), no call, and {why}: cannot tell supported from "
                       "ignored", exchanges)
    if with_fn > without:
        return Inference(axis, "supported", INFERRED, f"functions accepted and passed to the model (prompt_tokens "
                         f"{without} -> {with_fn})", exchanges=exchanges)
    tools = p.chat("control: the same function as tools", **p.chat_body,
                   tools=[{"type": "function", "function": f} for f in FUNCTIONS])
    exchanges = p.shared("chat_baseline") + p.since(mark)
    if tools is None:
        return unknown(axis, f"functions accepted, prompt_tokens unchanged ({without}); the tools control "
                       "failed (transport)", exchanges)
    with_tools = usage_of(body_of(tools), "prompt_tokens")
    seen = f"prompt_tokens {without} without, {with_fn} with functions"
    if tools.status == 200 and (_called(body_of(tools)) or (with_tools is not None and with_tools > without)):
        effect = "the model called it" if _called(body_of(tools)) else f"prompt_tokens {with_tools}"
        return Inference(axis, "ignored", INFERRED, f"functions accepted but dropped: {seen}, while the same "
                         f"function as tools reaches the model ({effect})", exchanges=exchanges)
    control = f"{with_tools} with tools" if tools.status == 200 else f"tools: {describe(tools)}"
    return Inference(axis, "supported", INFERRED, f"functions accepted with a valid chat response ({seen}, "
                     f"{control})", "tool definitions never reach the prompt (the chat template renders none), "
                     "so an endpoint that drops functions would look the same", exchanges)


# -- observations that are not profile axes --------------------------------------------------------


def done_marker(p: ProbeSession) -> Inference:
    streams: list[StreamResponse] = [s for s in p.facts.get("streams", []) if s.status == 200]
    exchanges = [s.exchange for s in streams if s.exchange is not None]
    if not streams:
        return Inference("stream.done", "unknown", UNKNOWN, "no successful stream to look at", exchanges=exchanges)
    sent = sum(1 for s in streams if s.done)
    if sent == len(streams):
        return Inference("stream.done", "sent", INFERRED, f"data: [DONE] ends all {len(streams)} streams",
                         exchanges=exchanges)
    return Inference("stream.done", "missing", INFERRED, f"data: [DONE] missing from {len(streams) - sent} of "
                     f"{len(streams)} streams (a defect, not a profile choice)", exchanges=exchanges)


def determinism(p: ProbeSession) -> Inference:
    name = "determinism.temperature_0"
    p.deterministic()
    runs = [k for k in ("baseline", *p.repeat_names()) if k in p.facts]
    exchanges = p.shared(*runs)
    texts = [text_of(body_of(p.facts.get(k))) for k in runs]
    if len(texts) < 2 or any(t is None for t in texts):
        return Inference(name, "unknown", UNKNOWN, "a greedy request failed", exchanges=exchanges)
    first, last = texts[0], texts[-1]
    assert first is not None and last is not None
    if first == last:
        return Inference(name, "deterministic", INFERRED, f"the same greedy request {len(texts)} times gave the "
                         f"same text", exchanges=exchanges)
    return Inference(name, "nondeterministic", INFERRED, f"the same greedy request gave different text on run "
                     f"{len(texts)} of {len(texts)} ({divergence(first, last)})", exchanges=exchanges)


DEFAULTS: dict[str, Any] = {"presence_penalty": 0, "frequency_penalty": 0, "best_of": 1, "logit_bias": {}}


def defaults_accepted(p: ProbeSession) -> Inference:
    name = "params.defaults"
    mark = p.mark()
    resp = p.completion("the options at their default values", prompt=S.PROMPT, max_tokens=4, temperature=0,
                        **DEFAULTS)
    exchanges = p.since(mark)
    if resp is None:
        return Inference(name, "unknown", UNKNOWN, "request failed (transport)", exchanges=exchanges)
    if resp.status == 200:
        return Inference(name, "accepted", INFERRED, f"{', '.join(f'{k}={v}' for k, v in DEFAULTS.items())} "
                         "together: HTTP 200", exchanges=exchanges)
    named = [k for k in DEFAULTS if names_param(resp, k)]
    return Inference(name, "rejected", INFERRED, f"defaults refused ({', '.join(named) or 'no option named'}): "
                     f"{describe(resp)} (SDKs send defaults: a defect)", exchanges=exchanges)
