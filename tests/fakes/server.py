"""A small, fully deterministic OpenAI-compatible fake endpoint, with fault knobs.

There is no model: the greedy continuation of a prompt is a window of a fixed public-domain
text, starting at a word chosen by a hash of the prompt; a toy tokenizer cuts text into regex
pieces of 1-4 characters (so a stop sequence can end inside a token). Everything the suite
looks at is implemented and follows a behaviour profile (conformance/profiles): stop
inclusion, max_tokens clamping or errors, context_length_exceeded_behavior, streamed usage
placement, the seed's unsupported options, n, echo, logprobs, seeded sampling, auth and
OpenAI-shaped errors.

`FakeConfig` picks the profile and, through its fault knobs, breaks exactly one behaviour at a
time, so the suite's own tests can show that each requirement family catches its fault::

    with serve_fake(FakeConfig(profile="openai", no_done=True)) as base_url:
        ...  # base_url == "http://127.0.0.1:PORT/v1"
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from conformance.profiles import AXES, UNSUPPORTED_OPTIONS, Profile, load_profile

PLANTED_KEY = "sk-PLANTED-conformance-0000"
DEFAULT_KEY = "sk-fake-endpoint-key"

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

STOP_MODES = ("include", "exclude", "leak_partial")
HANG_MODES = ("headers", "stream")


@dataclass(frozen=True)
class FakeConfig:
    """What the fake serves. Every fault knob defaults to off and breaks ONE behaviour."""

    profile: Profile | Mapping[str, str] | str = "fireworks"
    api_key: str | None = DEFAULT_KEY  # None: no auth configured at all
    model: str = "fake-model"
    chat_model: str | None = None  # a second model id for chat; None: the same model
    context_length: int | None = 512  # None: /v1/models reports no context length
    max_body_bytes: int = 1_000_000

    # -- stop ------------------------------------------------------------------------------
    stop_mode: str | None = None  # include | exclude override the profile; leak_partial: streams leak a stop prefix
    # -- stream framing ----------------------------------------------------------------------
    no_done: bool = False  # no `data: [DONE]`
    merged_events: bool = False  # two `data:` lines without a blank line between them
    bad_json_chunk: bool = False  # one chunk is not valid JSON
    wrong_content_type: bool = False  # streams served as application/json
    inconsistent_ids: bool = False  # every chunk has a different id
    two_finish_reasons: bool = False  # choice 0 gets a finish_reason twice
    missing_role: bool = False  # first chat delta has no role
    stream_differs: bool = False  # joined stream text != non-stream text
    chunk_schema_violation: bool = False  # chat chunks say object "chat.completion"
    stream_errors_in_band: bool = False  # validation errors of stream requests come as a 200 stream
    # -- usage -------------------------------------------------------------------------------
    usage_on_every_chunk: bool = False
    usage_missing: bool = False  # streamed usage never sent
    usage_wrong_arithmetic: bool = False  # total_tokens = prompt + completion + 1
    # -- max_tokens / context ------------------------------------------------------------------
    ignore_max_tokens: bool = False
    clamp_off_by_one: bool = False  # clamps to context - prompt - 1
    accept_overflow: bool = False  # clamps instead of the 400 the profile (or request) asks for
    # -- errors / auth ---------------------------------------------------------------------------
    fastapi_422_errors: bool = False  # validation errors as 422 {"detail": [...]}
    no_auth: bool = False  # any key (or none) accepted
    accept_any_key: bool = False  # a key is required, but any key is accepted
    unknown_model_ok: bool = False  # unknown model ids served as if they were the model
    malformed_json_500: bool = False  # a body that is not JSON gives a 500 text/plain
    html_error_page: bool = False  # every POST answers 500 text/html
    echo_key_in_errors: bool = False  # error messages quote the Authorization header received
    # -- params ---------------------------------------------------------------------------------
    reject_defaults: bool = False  # an unsupported option is rejected even at its default value
    # -- n / logprobs / echo / models ------------------------------------------------------------
    index_gap: bool = False  # choice indexes 0, 2, 4, ...
    logprobs_positive: bool = False  # logprobs > 0
    echo_ignored: bool = False  # echo=true does not prepend the prompt
    models_bad_shape: bool = False  # /v1/models entries lack object/created/owned_by
    # -- transport faults ----------------------------------------------------------------------
    hang: str | None = None  # headers: POSTs never answer; stream: streams stall after 2 chunks
    reset: bool = False  # streams: connection closed after 2 chunks
    endless_stream: bool = False  # streams never finish
    # -- determinism -----------------------------------------------------------------------------
    nondeterministic: bool = False  # temperature 0 output varies between requests

    def __post_init__(self) -> None:
        if self.stop_mode is not None and self.stop_mode not in STOP_MODES:
            raise ValueError(f"stop_mode must be one of {STOP_MODES}")
        if self.hang is not None and self.hang not in HANG_MODES:
            raise ValueError(f"hang must be one of {HANG_MODES}")

    @property
    def behaviour(self) -> dict[str, str]:
        if isinstance(self.profile, Profile):
            behaviour = dict(self.profile.behaviour)
        elif isinstance(self.profile, str):
            behaviour = dict(load_profile(self.profile).behaviour)
        else:
            behaviour = {str(k): str(v) for k, v in self.profile.items()}
        missing = set(AXES) - behaviour.keys()
        if missing:
            raise ValueError(f"profile behaviour lacks axes {sorted(missing)}")
        return behaviour

    @property
    def model_ids(self) -> list[str]:
        return [self.model] if not self.chat_model or self.chat_model == self.model else [self.model, self.chat_model]

    def with_(self, **changes: Any) -> FakeConfig:
        return replace(self, **changes)


FAULT_KNOBS: tuple[str, ...] = tuple(
    name for name in FakeConfig.__dataclass_fields__
    if name not in {"profile", "api_key", "model", "chat_model", "context_length", "max_body_bytes"}
)

# ---------------------------------------------------------------------------------------------
# Toy tokenizer and model
# ---------------------------------------------------------------------------------------------

# Public-domain English prose (Austen, Dickens, Melville, Carroll, Twain, Lincoln).
SENTENCES: tuple[str, ...] = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age "
    "of foolishness.",
    "Call me Ishmael.",
    "Some years ago, never mind how long precisely, having little or no money in my purse, and "
    "nothing particular to interest me on shore, I thought I would sail about a little and see the "
    "watery part of the world.",
    "Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    "nothing to do.",
    "Once or twice she had peeped into the book her sister was reading, but it had no pictures or "
    "conversations in it.",
    "You don't know about me without you have read a book by the name of The Adventures of Tom "
    "Sawyer; but that ain't no matter.",
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, "
    "conceived in Liberty, and dedicated to the proposition that all men are created equal.",
    "The quick brown fox jumps over the lazy dog, and the lazy dog sleeps on in the sun.",
    "There was no possibility of taking a walk that day.",
    "Happy families are all alike; every unhappy family is unhappy in its own way.",
    "In my younger and more vulnerable years my father gave me some advice that I have been "
    "turning over in my mind ever since.",
)

TOKEN_RE = re.compile(r"\s?[A-Za-z]{1,3}|\s?[0-9]{1,2}|\s|[^\sA-Za-z0-9]", re.S)


def tokenize(text: str) -> list[str]:
    """Pieces of 1-4 characters whose concatenation is exactly `text`."""
    return TOKEN_RE.findall(text)


def token_id(token: str) -> int:
    """Corpus tokens are ids 0..len(VOCAB)-1 (sorted); any other piece gets a stable id above them."""
    known = _VOCAB_IDS.get(token)
    return known if known is not None else len(_VOCAB_IDS) + zlib.crc32(token.encode("utf-8")) % 100_000


def _h(*parts: Any) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode("utf-8", "surrogatepass"))


CORPUS = " " + " ".join(SENTENCES)
CORPUS_TOKENS: tuple[str, ...] = tuple(tokenize(CORPUS))
WORD_STARTS: tuple[int, ...] = tuple(i for i, t in enumerate(CORPUS_TOKENS) if t.startswith(" "))
_UNSEEDED_CALLS = itertools.count(1)
_VOCAB_IDS: dict[str, int] = {t: i for i, t in enumerate(sorted(set(CORPUS_TOKENS)))}
VOCAB: dict[int, str] = {i: t for t, i in _VOCAB_IDS.items()}
ALT_POOL: tuple[str, ...] = tuple(sorted(set(CORPUS_TOKENS)))


@dataclass
class Sampling:
    temperature: float = 0.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    nondeterministic: bool = False


def natural_length(prompt: str) -> int:
    """Tokens after which the toy model emits end-of-sequence (40..79)."""
    return 40 + _h(prompt, "eos") % 40


def generate(prompt: str, limit: int, sampling: Sampling, choice: int = 0) -> tuple[list[str], bool]:
    """Up to `limit` tokens continuing `prompt`; second value: ended by end-of-sequence."""
    if sampling.nondeterministic or (sampling.temperature > 0 and sampling.seed is None):
        # Each unseeded call starts one word further on, so two calls never agree by chance (a random
        # start could repeat and make a "nondeterministic" fake look deterministic).
        pos = WORD_STARTS[(_h(prompt, "") + next(_UNSEEDED_CALLS)) % len(WORD_STARTS)]
    else:
        variant = (sampling.seed, choice, round(sampling.temperature, 3)) if sampling.temperature > 0 else ""
        pos = WORD_STARTS[_h(prompt, variant) % len(WORD_STARTS)]
    eos = natural_length(prompt)
    banned = {i for i, b in sampling.logit_bias.items() if b <= -50}
    forced = [i for i, b in sorted(sampling.logit_bias.items(), key=lambda kv: -kv[1]) if b >= 50 and i in VOCAB]
    penalise = sampling.presence_penalty > 0 or sampling.frequency_penalty > 0
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < min(limit, eos):
        if forced:
            tok = VOCAB[forced[0]]
        else:
            tok = CORPUS_TOKENS[pos % len(CORPUS_TOKENS)]
            for _ in range(8):
                if token_id(tok) in banned or (penalise and tok in seen):
                    pos += 1
                    tok = CORPUS_TOKENS[pos % len(CORPUS_TOKENS)]
                else:
                    break
            pos += 1
        out.append(tok)
        seen.add(tok)
    return out, eos < limit  # reaching max_tokens is always "length"


def token_logprob(context: str, token: str, position: int, positive: bool = False) -> float:
    value = -round(0.02 + (_h(context, token, position) % 300) / 200.0, 4)
    return -value if positive else value


def top_alternatives(context: str, token: str, position: int, k: int, positive: bool = False) -> list[tuple[str, float]]:
    """The chosen token first (the most likely: greedy), then k-1 others, each less likely."""
    best = token_logprob(context, token, position, positive)
    out = [(token, best)]
    start = _h(context, position, "alt")
    step = 0
    while len(out) < k:
        cand = ALT_POOL[(start + 7 * step) % len(ALT_POOL)]
        step += 1
        if any(cand == t for t, _ in out):
            continue
        value = round(best - 0.25 * len(out) - 0.05, 4)
        out.append((cand, -value if positive else value))
    return out


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


# ---------------------------------------------------------------------------------------------
# One choice's generation, with stop handling and the stream's deltas
# ---------------------------------------------------------------------------------------------


@dataclass
class ChoiceResult:
    text: str  # final (non-stream) text of the completion, without echo
    finish_reason: str
    completion_tokens: int
    tokens: list[str]  # visible tokens (the last one cut where a stop cut it)
    logprobs: list[float]
    deltas: list[tuple[str, int]]  # streamed text pieces, with the index of the token they came from
    stream_text: str


def _earliest_stop(text: str, stops: list[str]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for s in stops:
        p = text.find(s)
        if p >= 0 and (best is None or p < best[0] or (p == best[0] and len(s) > len(best[1]))):
            best = (p, s)
    return best


def _held_back(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of a stop sequence."""
    longest = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                longest = max(longest, k)
                break
    return longest


def run_choice(prompt: str, limit: int, stops: list[str], mode: str, leak: bool,
               sampling: Sampling, choice: int, positive_logprobs: bool) -> ChoiceResult:
    raw, natural_end = generate(prompt, limit, sampling, choice)
    generated = ""
    emitted = 0
    deltas: list[tuple[str, int]] = []
    finish = "stop" if natural_end else "length"
    count = 0
    final: str | None = None
    for i, tok in enumerate(raw):
        count = i + 1
        generated += tok
        hit = _earliest_stop(generated, stops) if stops else None
        if hit is not None:
            p, s = hit
            cut = p + len(s) if mode == "include" else p
            final = generated[:cut]
            if leak:
                extra = s[: len(s) - 1] or s
                piece = final[emitted:] + ("" if emitted > p else extra)
            else:
                piece = final[emitted:]
            deltas.append((piece, i))
            finish = "stop"
            break
        safe = len(generated) if leak else len(generated) - _held_back(generated, stops)
        deltas.append((generated[emitted:safe], i))
        emitted = max(emitted, safe)
    if final is None:
        final = generated
        if emitted < len(final):
            deltas.append((final[emitted:], max(count - 1, 0)))
    tokens: list[str] = []
    logprobs: list[float] = []
    used = 0
    for i, tok in enumerate(raw[:count]):
        if used >= len(final):
            break
        visible = tok[: len(final) - used]
        used += len(visible)
        tokens.append(visible)
        logprobs.append(token_logprob(prompt, tok, i, positive_logprobs))
    return ChoiceResult(final, finish, count, tokens, logprobs, deltas, "".join(d for d, _ in deltas))


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------

COMMON_PARAMS = {
    "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n",
    "stream", "stream_options", "stop", "presence_penalty", "frequency_penalty", "best_of",
    "logit_bias", "functions", "function_call", "tools", "tool_choice", "user", "seed", "logprobs",
    "top_logprobs", "echo", "suffix", "response_format", "context_length_exceeded_behavior", "top_k",
    "ignore_eos", "parallel_tool_calls", "service_tier", "store", "metadata", "min_p",
    "repetition_penalty", "prompt_truncate_len",
}
PARAM_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "best_of": (1,),
    "logit_bias": ({},),
    "functions": ([],),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class FakeApp:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.behaviour = config.behaviour
        self.stopping = threading.Event()
        self.counter = itertools.count(1)
        self.requests_seen = 0
        self.app = Starlette(exception_handlers={404: self._not_found, 405: self._not_found}, routes=[
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.model, methods=["GET"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
        ])

    # -- helpers --------------------------------------------------------------------------
    async def _not_found(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return self._error(ApiError(status, f"Unknown request URL: {request.method} {request.url.path}.",
                                    code="unknown_url"))

    def _error(self, exc: ApiError, request: Request | None = None) -> Response:
        if self.config.echo_key_in_errors and request is not None:
            exc.message += f" (received Authorization: {request.headers.get('authorization')!r})"
        return JSONResponse(exc.body(), status_code=exc.status)

    def _auth(self, request: Request) -> None:
        cfg = self.config
        if cfg.api_key is None or cfg.no_auth:
            return
        header = request.headers.get("authorization")
        if not header:
            raise ApiError(401, "You didn't provide an API key. Provide it in the Authorization header (Bearer auth).",
                           code="missing_api_key")
        scheme, _, key = header.partition(" ")
        if cfg.accept_any_key:
            return
        if scheme.lower() != "bearer" or key.strip() != cfg.api_key:
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    async def _sleep_forever(self) -> None:
        deadline = time.monotonic() + 120
        while not self.stopping.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > self.config.max_body_bytes:
            raise ApiError(413, f"request body too large ({len(raw)} bytes)", code="request_too_large")
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ctype not in ("application/json", "") and not ctype.endswith("+json"):
            raise _bad(f"Content-Type must be application/json, got {ctype!r}", code="invalid_content_type")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            if self.config.malformed_json_500:
                raise ApiError(500, "Internal Server Error") from exc
            raise _bad(f"We could not parse the JSON body of your request: {exc}", code="invalid_json") from exc
        if not isinstance(body, dict):
            raise _bad("The request body must be a JSON object.", code="invalid_json")
        return body

    def _validation(self, message: str, param: str, code: str | None = None) -> ApiError:
        if self.config.fastapi_422_errors:
            exc = ApiError(422, message, param=param, code=code)
            exc.type = "fastapi"
            return exc
        return _bad(message, param, code)

    def _render(self, exc: ApiError, stream: bool, request: Request) -> Response:
        if exc.type == "fastapi":
            return JSONResponse({"detail": [{"loc": ["body", exc.param], "msg": exc.message,
                                             "type": "value_error"}]}, status_code=422)
        if exc.status == 500 and self.config.malformed_json_500:
            return Response("Internal Server Error", status_code=500, media_type="text/plain")
        if stream and self.config.stream_errors_in_band and exc.status in (400, 404, 422):
            payload = f"data: {json.dumps(exc.body())}\n\ndata: [DONE]\n\n"
            return Response(payload, status_code=200, media_type="text/event-stream")
        return self._error(exc, request)

    # -- routes ------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _model_entry(self, mid: str) -> dict[str, Any]:
        if self.config.models_bad_shape:
            entry: dict[str, Any] = {"id": mid, "name": mid}
        else:
            entry = {"id": mid, "object": "model", "created": 1_700_000_000, "owned_by": "conformance-fake"}
        if self.config.context_length is not None:
            entry["context_length"] = self.config.context_length
        return entry

    async def models(self, request: Request) -> Response:
        try:
            self._auth(request)
        except ApiError as exc:
            return self._error(exc, request)
        return JSONResponse({"object": "list", "data": [self._model_entry(m) for m in self.config.model_ids]})

    async def model(self, request: Request) -> Response:
        try:
            self._auth(request)
            mid = request.path_params["model_id"]
            if mid not in self.config.model_ids:
                raise ApiError(404, f"The model '{mid}' does not exist", param="model", code="model_not_found")
        except ApiError as exc:
            return self._error(exc, request)
        return JSONResponse(self._model_entry(mid))

    async def completions(self, request: Request) -> Response:
        return await self._handle(request, chat=False)

    async def chat(self, request: Request) -> Response:
        return await self._handle(request, chat=True)

    async def _handle(self, request: Request, chat: bool) -> Response:
        self.requests_seen += 1
        cfg = self.config
        if cfg.html_error_page:
            return HTMLResponse("<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head>"
                                "<body><h1>Internal Server Error</h1><p>upstream crashed</p></body></html>",
                                status_code=500)
        if cfg.hang == "headers":
            await self._sleep_forever()
            return Response("", status_code=504)
        stream = False
        try:
            self._auth(request)
            body = await self._body(request)
            stream = body.get("stream") is True
            plan = self._plan(body, chat)
        except ApiError as exc:
            return self._render(exc, stream, request)
        if plan["stream"]:
            return self._stream_response(plan, chat)
        return JSONResponse(self._complete(plan, chat))

    # -- validation and planning -------------------------------------------------------------
    def _plan(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        cfg, beh = self.config, self.behaviour
        model = body.get("model")
        if model is None:
            raise self._validation("you must provide a model parameter", "model")
        if not isinstance(model, str):
            raise self._validation("model must be a string", "model")
        if model not in cfg.model_ids and not cfg.unknown_model_ok:
            raise ApiError(404, f"The model '{model}' does not exist or you do not have access to it.",
                           param="model", code="model_not_found")
        stream = body.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise self._validation("stream must be a boolean", "stream")
        stream = bool(stream)

        # prompts
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise self._validation("messages must be a non-empty array", "messages")
            rendered = []
            for i, m in enumerate(messages):
                if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool",
                                                                       "developer", "function"):
                    raise self._validation(f"messages[{i}]: invalid message", f"messages[{i}]")
                content = m.get("content")
                if isinstance(content, list):
                    parts = []
                    for part in content:
                        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                            raise self._validation(f"messages[{i}].content: unsupported part", f"messages[{i}].content")
                        parts.append(part["text"])
                    content = "".join(parts)
                elif content is None and m["role"] in ("assistant", "tool", "function"):
                    content = ""
                elif not isinstance(content, str):
                    raise self._validation(f"messages[{i}].content must be a string", f"messages[{i}].content")
                rendered.append(f"<|{m['role']}|>{content}\n")
            prompts = ["".join(rendered) + "<|assistant|>"]
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, str):
                prompts = [prompt]
            elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
                prompts = list(prompt)
            elif isinstance(prompt, list) and prompt and all(_is_int(t) for t in prompt):
                prompts = ["".join(VOCAB.get(t, "?") for t in prompt)]
            else:
                raise self._validation("prompt must be a string or a non-empty array of strings", "prompt")

        # numbers
        n = body.get("n", 1)
        if n is None:
            n = 1
        if not _is_int(n) or not 1 <= n <= 128:
            raise self._validation("n must be an integer between 1 and 128", "n")
        temperature = body.get("temperature", 1.0 if chat else 1.0)
        if temperature is None:
            temperature = 1.0
        if not _is_num(temperature) or not 0 <= temperature <= 2:
            raise self._validation("temperature must be a number between 0 and 2", "temperature")
        top_p = body.get("top_p")
        if top_p is not None and (not _is_num(top_p) or not 0 <= top_p <= 1):
            raise self._validation("top_p must be a number between 0 and 1", "top_p")
        seed = body.get("seed")
        if seed is not None and (not _is_int(seed) or not -(2**63) <= seed < 2**63):
            raise self._validation("seed must be a 64-bit integer", "seed")
        key = "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
        max_tokens = body.get(key)
        if max_tokens is None and not chat:
            max_tokens = 16
        if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < (1 if chat else 0)):
            raise self._validation(f"{key} must be an integer >= {1 if chat else 0}", key)

        # stop
        stop = body.get("stop")
        if stop is None:
            stops: list[str] = []
        elif isinstance(stop, str):
            stops = [stop] if stop else []
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            if len(stop) > 4:
                raise self._validation(f"{stop!r} is too long - 'stop'; at most 4 stop sequences are allowed",
                                       "stop", "array_above_max_length")
            stops = [s for s in stop if s]
        else:
            raise self._validation("stop must be a string or an array of strings", "stop")

        # stream options
        stream_options = body.get("stream_options")
        include_usage = False
        if stream_options is not None:
            if not stream and beh["stream.usage"] == "include_usage":
                raise self._validation("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                       "stream_options", "invalid_value")
            if not isinstance(stream_options, dict):
                raise self._validation("stream_options must be an object", "stream_options")
            include_usage = stream_options.get("include_usage") is True

        # penalties etc.
        for name in ("presence_penalty", "frequency_penalty"):
            v = body.get(name)
            if v is not None and (not _is_num(v) or not -2 <= v <= 2):
                raise self._validation(f"{name} must be a number between -2 and 2", name)
        logit_bias = body.get("logit_bias")
        bias: dict[int, float] = {}
        if logit_bias is not None:
            if not isinstance(logit_bias, dict):
                raise self._validation("logit_bias must be an object", "logit_bias")
            for k, v in logit_bias.items():
                try:
                    tid = int(k)
                except (TypeError, ValueError):
                    raise self._validation(f"logit_bias: invalid token id {k!r}", "logit_bias") from None
                if not _is_num(v) or not -100 <= v <= 100:
                    raise self._validation("logit_bias values must be between -100 and 100", "logit_bias")
                bias[tid] = float(v)
        best_of = body.get("best_of")
        if best_of is not None:
            if chat:
                pass
            elif not _is_int(best_of) or not 0 <= best_of <= 20:
                raise self._validation("best_of must be an integer between 0 and 20", "best_of")
        functions = body.get("functions")
        if functions is not None and not isinstance(functions, list):
            raise self._validation("functions must be an array", "functions")

        for name in UNSUPPORTED_OPTIONS:
            if name not in body or body[name] is None:
                continue
            if name == "functions" and not chat:
                continue
            if name == "best_of" and chat:
                continue
            mode = beh[f"params.{name}"]
            is_default = any(body[name] == d and type(body[name]) is type(d) for d in PARAM_DEFAULTS[name]) or (
                name in ("presence_penalty", "frequency_penalty") and body[name] == 0)
            if cfg.reject_defaults or (mode == "rejected" and not is_default):
                raise self._validation(f"{name} is not supported", name, "unsupported_parameter")
        b_mode = beh["params.best_of"]
        if not chat and best_of is not None and b_mode == "supported" and best_of != 1:
            if best_of < n:
                raise self._validation("best_of must be greater than or equal to n", "best_of")
            if stream:
                raise self._validation("best_of cannot be used with stream", "best_of")

        # logprobs / echo
        logprobs = body.get("logprobs")
        top_logprobs = body.get("top_logprobs")
        if chat:
            if logprobs is not None and not isinstance(logprobs, bool):
                raise self._validation("logprobs must be a boolean", "logprobs")
            if top_logprobs is not None:
                if not _is_int(top_logprobs) or not 0 <= top_logprobs <= 20:
                    raise self._validation("top_logprobs must be an integer between 0 and 20", "top_logprobs")
                if not logprobs:
                    raise self._validation("top_logprobs requires logprobs to be true", "top_logprobs")
            lp_k: int | None = (top_logprobs or 0) if logprobs else None
        else:
            if logprobs is not None and (not _is_int(logprobs) or not 0 <= logprobs <= 5):
                raise self._validation("logprobs must be an integer between 0 and 5", "logprobs")
            lp_k = logprobs
        echo = body.get("echo", False)
        if not chat and echo is not None and not isinstance(echo, bool):
            raise self._validation("echo must be a boolean", "echo")
        echo = bool(echo) and not chat and not cfg.echo_ignored

        # context length
        cleb = body.get("context_length_exceeded_behavior")
        overflow_mode = beh["max_tokens.overflow"]
        if beh["max_tokens.context_length_exceeded_behavior"] == "honoured" and cleb is not None:
            if cleb not in ("truncate", "error"):
                raise self._validation("context_length_exceeded_behavior must be 'truncate' or 'error'",
                                       "context_length_exceeded_behavior")
            overflow_mode = cleb
        ctx = cfg.context_length
        param_name = "messages" if chat else "prompt"
        limits: list[int] = []
        prompt_counts = [len(tokenize(p)) for p in prompts]
        for count in prompt_counts:
            if ctx is None:
                limits.append(max_tokens if max_tokens is not None else 256)
                continue
            if count >= ctx:
                raise self._validation(
                    f"This model's maximum context length is {ctx} tokens. However, your messages resulted in "
                    f"{count} tokens. Please reduce the length of the messages.", param_name, "context_length_exceeded")
            room = ctx - count
            if max_tokens is None:
                limit = room
            elif count + max_tokens > ctx:
                if overflow_mode == "error" and not cfg.accept_overflow:
                    raise self._validation(
                        f"This model's maximum context length is {ctx} tokens. However, you requested "
                        f"{count + max_tokens} tokens ({count} in the messages, {max_tokens} in the completion). "
                        "Please reduce the length of the messages or completion.", param_name,
                        "context_length_exceeded")
                limit = room - 1 if cfg.clamp_off_by_one else room
            else:
                limit = max_tokens
            if cfg.ignore_max_tokens:
                limit = room
            limits.append(max(limit, 0))

        mode = self.behaviour["stop.output"]
        if cfg.stop_mode in ("include", "exclude"):
            mode = cfg.stop_mode
        sampling = Sampling(
            temperature=float(temperature), seed=seed,
            presence_penalty=float(body.get("presence_penalty") or 0) if beh["params.presence_penalty"] == "supported" else 0.0,
            frequency_penalty=float(body.get("frequency_penalty") or 0) if beh["params.frequency_penalty"] == "supported" else 0.0,
            logit_bias=bias if beh["params.logit_bias"] == "supported" else {},
            nondeterministic=cfg.nondeterministic,
        )
        return {
            "model": model, "stream": stream, "prompts": prompts, "prompt_counts": prompt_counts,
            "limits": limits, "n": n, "stops": stops, "mode": mode, "sampling": sampling,
            "lp_k": lp_k, "echo": echo, "include_usage": include_usage, "seed": seed,
        }

    def _choices(self, plan: dict[str, Any], stream: bool) -> list[tuple[int, int, ChoiceResult]]:
        """(index, prompt number, result) for every choice."""
        out = []
        leak = stream and self.config.stop_mode == "leak_partial"
        for pi, (prompt, limit) in enumerate(zip(plan["prompts"], plan["limits"], strict=True)):
            for c in range(plan["n"]):
                index = pi * plan["n"] + c
                if self.config.index_gap:
                    index *= 2
                result = run_choice(prompt, limit, plan["stops"], plan["mode"], leak, plan["sampling"], c,
                                    self.config.logprobs_positive)
                out.append((index, pi, result))
        return out

    def _usage(self, plan: dict[str, Any], choices: list[tuple[int, int, ChoiceResult]]) -> dict[str, int]:
        prompt_tokens = sum(plan["prompt_counts"])
        completion = sum(r.completion_tokens for _, _, r in choices)
        total = prompt_tokens + completion + (1 if self.config.usage_wrong_arithmetic else 0)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": total}

    def _completion_logprobs(self, plan: dict[str, Any], pi: int, r: ChoiceResult,
                             tokens: list[str] | None = None, lps: list[float] | None = None,
                             offset: int = 0, echo_prompt: bool = False, text_base: int = 0) -> dict[str, Any]:
        k = plan["lp_k"] or 0
        prompt = plan["prompts"][pi]
        pos_lp = self.config.logprobs_positive
        toks: list[str] = []
        token_lps: list[float | None] = []
        tops: list[dict[str, float] | None] = []
        if echo_prompt:
            for i, tok in enumerate(tokenize(prompt)):
                toks.append(tok)
                if i == 0:
                    token_lps.append(None)
                    tops.append(None)
                else:
                    alts = top_alternatives("prompt:" + prompt, tok, i, k + 1, pos_lp)
                    token_lps.append(alts[0][1])
                    tops.append(dict(alts))
        src_tokens = r.tokens if tokens is None else tokens
        src_lps = r.logprobs if lps is None else lps
        for i, (tok, _lp) in enumerate(zip(src_tokens, src_lps, strict=True)):
            alts = top_alternatives(prompt, tok, offset + i, k + 1, pos_lp)
            alts[0] = (tok, _lp)
            toks.append(tok)
            token_lps.append(_lp)
            tops.append(dict(alts))
        text_offset = []
        pos = text_base
        for tok in toks:
            text_offset.append(pos)
            pos += len(tok)
        return {"tokens": toks, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": text_offset}

    def _chat_logprobs(self, plan: dict[str, Any], pi: int, tokens: list[str], lps: list[float],
                       offset: int = 0) -> dict[str, Any]:
        k = plan["lp_k"] or 0
        prompt = plan["prompts"][pi]
        content = []
        for i, (tok, lp) in enumerate(zip(tokens, lps, strict=True)):
            alts = top_alternatives(prompt, tok, offset + i, max(k, 1), self.config.logprobs_positive)[:k]
            if alts:
                alts[0] = (tok, lp)
            content.append({
                "token": tok, "logprob": lp, "bytes": list(tok.encode("utf-8")),
                "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode("utf-8"))} for t, v in alts],
            })
        return {"content": content, "refusal": None}

    def _ids(self, chat: bool) -> tuple[str, int]:
        return f"{'chatcmpl' if chat else 'cmpl'}-fake{next(self.counter):06d}", int(time.time())

    # -- non-streaming -------------------------------------------------------------------------
    def _complete(self, plan: dict[str, Any], chat: bool) -> dict[str, Any]:
        cid, created = self._ids(chat)
        choices = self._choices(plan, stream=False)
        out_choices = []
        for index, pi, r in choices:
            if chat:
                choice: dict[str, Any] = {
                    "index": index, "message": {"role": "assistant", "content": r.text, "refusal": None},
                    "logprobs": self._chat_logprobs(plan, pi, r.tokens, r.logprobs) if plan["lp_k"] is not None else None,
                    "finish_reason": r.finish_reason,
                }
            else:
                text = (plan["prompts"][pi] if plan["echo"] else "") + r.text
                choice = {
                    "index": index, "text": text,
                    "logprobs": (self._completion_logprobs(plan, pi, r, echo_prompt=plan["echo"])
                                 if plan["lp_k"] is not None else None),
                    "finish_reason": r.finish_reason,
                }
            out_choices.append(choice)
        return {
            "id": cid, "object": "chat.completion" if chat else "text_completion", "created": created,
            "model": plan["model"], "system_fingerprint": "fp_fake0001", "choices": out_choices,
            "usage": self._usage(plan, choices),
        }

    # -- streaming -----------------------------------------------------------------------------
    def _stream_events(self, plan: dict[str, Any], chat: bool) -> list[dict[str, Any]]:
        """Every chunk of the stream, in order (before faults that touch the framing)."""
        cfg, beh = self.config, self.behaviour
        cid, created = self._ids(chat)
        choices = self._choices(plan, stream=True)
        usage = self._usage(plan, choices)
        obj = "chat.completion.chunk" if chat else "text_completion"
        if chat and cfg.chunk_schema_violation:
            obj = "chat.completion"
        usage_axis = beh["stream.usage"]
        usage_key = usage_axis == "final_chunk" or (usage_axis == "include_usage" and plan["include_usage"])

        def chunk(choice_list: list[dict[str, Any]]) -> dict[str, Any]:
            c: dict[str, Any] = {"id": cid, "object": obj, "created": created, "model": plan["model"],
                                 "system_fingerprint": "fp_fake0001", "choices": choice_list}
            if usage_key:
                c["usage"] = None
            return c

        def piece(index: int, text: str, lp: dict[str, Any] | None, role: bool = False) -> dict[str, Any]:
            if chat:
                delta: dict[str, Any] = {"content": text}
                if role:
                    delta = {"role": "assistant", "content": text}
                return {"index": index, "delta": delta, "logprobs": lp, "finish_reason": None}
            return {"index": index, "text": text, "logprobs": lp, "finish_reason": None}

        events: list[dict[str, Any]] = []
        if chat:
            for index, _, _ in choices:
                first = piece(index, "", None, role=not cfg.missing_role)
                events.append(chunk([first]))
        elif plan["echo"]:
            for index, pi, _ in choices:
                lp = None
                if plan["lp_k"] is not None:
                    empty = ChoiceResult("", "", 0, [], [], [], "")
                    lp = self._completion_logprobs(plan, pi, empty, echo_prompt=True)
                events.append(chunk([piece(index, plan["prompts"][pi], lp)]))
        # interleave the choices' deltas step by step
        per_choice = [list(r.deltas) for _, _, r in choices]
        if cfg.stream_differs and per_choice and per_choice[0]:
            text, tok = per_choice[0][0]
            per_choice[0][0] = (text + " [stream]", tok)
        steps = max((len(d) for d in per_choice), default=0)
        for step in range(steps):
            for (index, pi, r), deltas in zip(choices, per_choice, strict=True):
                if step >= len(deltas):
                    continue
                text, tok_index = deltas[step]
                lp = None
                if plan["lp_k"] is not None:
                    if tok_index < len(r.tokens) and text:
                        toks, lps = [r.tokens[tok_index]], [r.logprobs[tok_index]]
                    else:
                        toks, lps = [], []
                    base = len(plan["prompts"][pi]) if plan["echo"] else 0
                    base += sum(len(t) for t in r.tokens[:tok_index])
                    lp = (self._chat_logprobs(plan, pi, toks, lps, tok_index) if chat
                          else self._completion_logprobs(plan, pi, r, toks, lps, tok_index, text_base=base))
                if not text and lp is None:
                    continue
                events.append(chunk([piece(index, text, lp)]))
        if cfg.two_finish_reasons and choices and len(events) > 1:
            events[-1]["choices"][0]["finish_reason"] = choices[0][2].finish_reason
        final_choices = []
        for index, _, r in choices:
            if chat:
                final_choices.append({"index": index, "delta": {}, "logprobs": None, "finish_reason": r.finish_reason})
            else:
                final_choices.append({"index": index, "text": "", "logprobs": None, "finish_reason": r.finish_reason})
        final = chunk(final_choices)
        events.append(final)
        if not cfg.usage_missing:
            if usage_axis == "final_chunk":
                final["usage"] = usage
            elif usage_axis == "include_usage" and plan["include_usage"]:
                extra = chunk([])
                extra["usage"] = usage
                events.append(extra)
        if cfg.usage_on_every_chunk:
            for e in events:
                e["usage"] = dict(usage)
        if cfg.inconsistent_ids:
            for k, e in enumerate(events):
                e["id"] = f"{cid}-{k}"
        return events

    def _stream_response(self, plan: dict[str, Any], chat: bool) -> Response:
        cfg = self.config
        events = self._stream_events(plan, chat)
        filler = ""
        if cfg.endless_stream:
            # never finishes: only the chunks before any finish_reason, then the same text forever
            events = [e for e in events if e["choices"] and all(c.get("finish_reason") is None for c in e["choices"])]
            template = json.loads(json.dumps(events[-1] if events else self._stream_events(plan, chat)[0]))
            template["choices"] = template["choices"][:1]
            if chat:
                template["choices"][0]["delta"] = {"content": " la"}
            else:
                template["choices"][0]["text"] = " la"
            template["choices"][0]["finish_reason"] = None
            filler = json.dumps(template, separators=(",", ":"))
        payloads = [json.dumps(e, separators=(",", ":")) for e in events]
        if cfg.bad_json_chunk and len(payloads) > 1:
            payloads[1] = payloads[1][: len(payloads[1]) // 2]

        async def body() -> AsyncIterator[bytes]:
            for k, payload in enumerate(payloads):
                if k == 2 and cfg.hang == "stream":
                    await self._sleep_forever()
                    return
                if k == 2 and cfg.reset:
                    raise ConnectionResetError("fake: connection reset mid-stream")
                sep = "\n" if (cfg.merged_events and k == 0) else "\n\n"
                yield f"data: {payload}{sep}".encode()
                await asyncio.sleep(0)
            if cfg.endless_stream:
                block = (f"data: {filler}\n\n" * 64).encode()
                deadline = time.monotonic() + 120
                sent = 0
                while not self.stopping.is_set() and time.monotonic() < deadline and sent < 512 * 2**20:
                    yield block
                    sent += len(block)
                    await asyncio.sleep(0.002)
                return
            if not cfg.no_done:
                yield b"data: [DONE]\n\n"

        media = "application/json" if cfg.wrong_content_type else "text/event-stream"
        return StreamingResponse(body(), media_type=media, headers={"cache-control": "no-cache"})


# ---------------------------------------------------------------------------------------------
# Serving on a real loopback socket
# ---------------------------------------------------------------------------------------------


def create_app(config: FakeConfig) -> Starlette:
    fake = FakeApp(config)
    app = fake.app
    app.state.fake = fake
    return app


@contextlib.contextmanager
def serve_fake(
    config: FakeConfig | None = None, *, startup_timeout: float = 10.0, app_class: type[FakeApp] | None = None
) -> Iterator[str]:
    """Serve a fake on 127.0.0.1 (free port) in a background thread; yields the API base URL.

    `app_class`: a FakeApp subclass to serve instead (e.g. one whose chat template renders tools)."""
    config = config or FakeConfig()
    fake = (app_class or FakeApp)(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(
        fake.app, log_level="critical", access_log=False, lifespan="off",
        timeout_graceful_shutdown=1, timeout_keep_alive=2,
    ))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"fake-endpoint-{port}",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("fake endpoint did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        fake.stopping.set()
        server.should_exit = True
        thread.join(timeout=5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()
