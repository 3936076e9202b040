"""Real clients, unchanged: the official openai Python and Node SDKs, the legacy openai<1 SDK, langchain-openai.

Each client check reports as its own requirement, with the client's name and version in the evidence
details ({"client": "openai-python", "version": "..."}); requests made in-process are recorded (redacted)
through httpx event hooks like the suite's own. A missing client is SKIP with the reason, never a failure.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from conformance import strategies as S
from conformance.checks import sdk as checks
from conformance.checks import stop as stop_checks
from conformance.checks import stream as stream_checks
from conformance.checks.common import clip
from conformance.results import (
    CheckFailure,
    EndpointError,
    EndpointTimeout,
    Exchange,
    NotApplicable,
    Skipped,
    Status,
)
from conformance.scenario import Context, scenario
from conformance.scenarios._support import NONDETERMINISTIC, reproduces
from conformance.sdk_clients import Recorder, ScriptFailure, run_legacy, run_node, script_env

SEED_PROMPT = "The quick brown fox"
SEED_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say this is a test"},
]
MAX_TOKENS = 16
NO_KEY = "no-key-given"  # clients refuse to start without a key; an endpoint without auth ignores it
WRONG_KEY = "sk-conformance-sdk-wrong-key-000000"
UNKNOWN_MODEL = "conformance-no-such-model"


# -- recording outcomes with the client in the evidence ----------------------------------------------------------


@dataclass
class ClientInfo:
    name: str
    version: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def details(self) -> dict[str, Any]:
        return {"client": self.name, "version": self.version, **self.extra}


def judge(ctx: Context, requirement: str, info: ClientInfo, check: Callable[[], Any]) -> bool:
    """Run `check` for `requirement` and record PASS/FAIL with the client in the details (and message).

    An exception other than CheckFailure escaping `check` is what an application would hit reading the
    client's result (AttributeError, TypeError, ...): a FAIL of this requirement, not a suite error."""
    if not ctx.applies(requirement):
        ctx.verify(requirement, lambda: None)  # records NOT_APPLICABLE / SKIP with the runner's reason
        return False
    try:
        check()
    except CheckFailure as failure:
        details = {**info.details, **ctx.client.redact(failure.details)}
        ctx.record(requirement, failure.status, f"{info.label}: {ctx.client.redact(failure.message)}", details)
        if failure.requirement != requirement and failure.requirement in ctx.spec.covers:
            ctx.record(failure.requirement, failure.status, f"{info.label}: {failure.message}", details)
        return False
    except (NotApplicable, Skipped):
        raise
    except Exception as exc:
        message = ctx.client.redact(f"{info.label}: reading the client's result raised {type(exc).__name__}: {exc}")
        ctx.record(requirement, Status.FAIL, clip(message, 600), {**info.details, "exception": type(exc).__name__})
        return False
    ctx.record(requirement, Status.PASS, "", info.details)
    return True


def _from_exception(requirement: str, info: ClientInfo, exc: BaseException, doing: str) -> CheckFailure:
    """A client exception on a valid request, as the right kind of failure."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    message = f"{doing}: the client raised {name}" + (f" (HTTP {status})" if status else "") + f": {clip(str(exc))}"
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Timeout" in name or "APITimeoutError" in names:
        return EndpointTimeout(requirement, message, exception=name)
    if "APIConnectionError" in names or (isinstance(status, int) and status >= 500):
        return EndpointError(requirement, message, exception=name, status=status)
    return CheckFailure(requirement, message, exception=name, status=status)


def _record_exchange(ctx: Context) -> Callable[[Exchange, Any], None]:
    def record(exchange: Exchange, usage: Any) -> None:
        ctx.client._record(exchange, real=True, usage=usage)

    return record


def _recorder(ctx: Context, note: str) -> Recorder:
    return Recorder(ctx.client.redact, ctx.client.redactor.headers, _record_exchange(ctx), note)


# -- the official openai Python SDK ----------------------------------------------------------------------------------


class PythonSDK:
    """An openai.OpenAI client for the target: max_retries=0, the run's timeout, requests recorded."""

    def __init__(self, ctx: Context, module: Any, api_key: str | None = None) -> None:
        self.ctx = ctx
        self.openai = module
        self.info = ClientInfo("openai-python", str(module.__version__))
        self.recorder = _recorder(ctx, f"through {self.info.label}")
        self.http = module.DefaultHttpxClient(event_hooks=self.recorder.hooks)
        self.client = module.OpenAI(
            base_url=ctx.target.base_url, api_key=api_key or ctx.target.api_key or NO_KEY,
            max_retries=0, timeout=ctx.client.timeout, http_client=self.http,
        )

    def call(self, requirement: str, doing: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except CheckFailure:
            raise
        except Exception as exc:
            raise _from_exception(requirement, self.info, exc, doing) from None

    @staticmethod
    def dump(obj: Any) -> Any:
        to_dict = getattr(obj, "to_dict", None)
        if callable(to_dict):
            return to_dict()
        return obj.model_dump(exclude_unset=True) if hasattr(obj, "model_dump") else obj

    def type_errors(self, obj: Any) -> list[str]:
        """What the SDK's own (strict) model says about the object it parsed leniently."""
        model = type(obj)
        validate = getattr(model, "model_validate", None) or getattr(model, "parse_obj", None)
        if validate is None:
            return []
        try:
            validate(self.dump(obj))
        except Exception as exc:  # pydantic.ValidationError (v1 or v2)
            errors = getattr(exc, "errors", None)
            if callable(errors):
                return [f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in errors()]
            return [str(exc)]
        return []

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        with contextlib.suppress(Exception):
            self.http.close()


def _openai_module() -> Any:
    try:
        module = importlib.import_module("openai")
    except ImportError:
        raise Skipped("the openai Python package is not installed (pip install 'openai>=1')") from None
    version = str(getattr(module, "__version__", "0"))
    if not hasattr(module, "OpenAI"):
        raise Skipped(f"openai {version} is the legacy SDK; sdk.python.* needs openai>=1 "
                      "(the legacy SDK is checked by sdk.legacy.*)")
    return module


@contextlib.contextmanager
def python_sdk(ctx: Context, api_key: str | None = None) -> Iterator[PythonSDK]:
    sdk = PythonSDK(ctx, _openai_module(), api_key)
    try:
        yield sdk
    finally:
        sdk.close()


def _choice0(requirement: str, what: str, obj: Any) -> Any:
    choices = getattr(obj, "choices", None)
    if not choices:
        raise CheckFailure(requirement, f"{what} has no choices: {clip(PythonSDK.dump(obj))}",
                           observed=PythonSDK.dump(obj), expected="choices[0]")
    return choices[0]


@scenario("sdk.python.completions", covers=["sdk.python.completions"])
def sdk_python_completions(ctx: Context) -> None:
    """client.completions.create(prompt="The quick brown fox") parses into the SDK's Completion."""
    req = "sdk.python.completions"
    with python_sdk(ctx) as sdk:
        def check() -> None:
            result = sdk.call(req, "completions.create", lambda: sdk.client.completions.create(
                model=ctx.target.model, prompt=SEED_PROMPT, max_tokens=MAX_TOKENS, temperature=0))
            checks.sdk_type_accepts(req, "the Completion", sdk.type_errors(result), sdk.dump(result))
            choice = _choice0(req, "the Completion", result)
            checks.nonempty_text(req, "choices[0].text", choice.text)
            checks.finish_reason_in(req, "choices[0]", choice.finish_reason)

        judge(ctx, req, sdk.info, check)


@scenario("sdk.python.chat", covers=["sdk.python.chat"])
def sdk_python_chat(ctx: Context) -> None:
    """client.chat.completions.create with the seed's messages parses into the SDK's ChatCompletion."""
    req = "sdk.python.chat"
    with python_sdk(ctx) as sdk:
        def check() -> None:
            result = sdk.call(req, "chat.completions.create", lambda: sdk.client.chat.completions.create(
                model=ctx.target.chat_model, messages=SEED_MESSAGES, max_tokens=MAX_TOKENS, temperature=0))
            checks.sdk_type_accepts(req, "the ChatCompletion", sdk.type_errors(result), sdk.dump(result))
            choice = _choice0(req, "the ChatCompletion", result)
            checks.equals(req, "choices[0].message.role", choice.message.role, "assistant")
            checks.nonempty_text(req, "choices[0].message.content", choice.message.content)
            checks.finish_reason_in(req, "choices[0]", choice.finish_reason)

        judge(ctx, req, sdk.info, check)


def _iterate(sdk: PythonSDK, req: str, doing: str, make: Callable[[], Any]) -> list[Any]:
    def run() -> list[Any]:
        stream = make()
        try:
            return list(stream)
        finally:
            with contextlib.suppress(Exception):
                stream.close()

    result: list[Any] = sdk.call(req, doing, run)
    return result


@scenario("sdk.python.stream_chat", covers=["sdk.python.stream_chat"])
def sdk_python_stream_chat(ctx: Context) -> None:
    """A streamed chat completion iterated with the SDK: typed chunks, joined deltas, one finish_reason."""
    req = "sdk.python.stream_chat"
    with python_sdk(ctx) as sdk:
        def check() -> None:
            chunks = _iterate(sdk, req, "streamed chat.completions.create", lambda: sdk.client.chat.completions.create(
                model=ctx.target.chat_model, messages=SEED_MESSAGES, max_tokens=MAX_TOKENS, temperature=0,
                stream=True))
            if not chunks:
                raise CheckFailure(req, "the SDK yielded no chunks", observed=[], expected="chunks")
            for i, chunk in enumerate(chunks):
                checks.sdk_type_accepts(req, f"chunk {i} of {len(chunks)} (ChatCompletionChunk)",
                                        sdk.type_errors(chunk), sdk.dump(chunk))
            text = "".join((c.delta.content or "") for chunk in chunks for c in (chunk.choices or [])
                           if c.index == 0 and c.delta is not None)
            finishes = [c.finish_reason for chunk in chunks for c in (chunk.choices or [])
                        if c.index == 0 and c.finish_reason is not None]
            _streamed_choice0(req, "the content joined from the SDK's deltas", text, finishes)

        judge(ctx, req, sdk.info, check)


_FINISH_LOC = re.compile(r"^choices\.(\d+)\.finish_reason: ")


def _completion_chunk_errors(sdk: PythonSDK, chunk: Any) -> list[str]:
    """The SDK's Completion type checked on a streamed chunk. The SDK parses completion chunks into the same
    Completion type as the whole response ("both the streamed and non-streamed response objects share the same
    shape"), whose choices[].finish_reason is declared non-null; OpenAI itself sends null until the last chunk,
    so a null finish_reason is the one thing the type says that a chunk need not meet."""
    payload = sdk.dump(chunk)
    choices = payload.get("choices") if isinstance(payload, dict) else None
    out: list[str] = []
    for error in sdk.type_errors(chunk):
        match = _FINISH_LOC.match(error)
        if match and isinstance(choices, list) and int(match.group(1)) < len(choices):
            choice = choices[int(match.group(1))]
            if isinstance(choice, dict) and "finish_reason" in choice and choice["finish_reason"] is None:
                continue
        out.append(error)
    return out


def _streamed_completion(sdk: PythonSDK, req: str, chunks: list[Any]) -> tuple[str, Any]:
    """Check the SDK's streamed completion chunks field by field; (choice 0's joined text, its finish_reason)."""
    if not chunks:
        raise CheckFailure(req, "the SDK yielded no chunks", observed=[], expected="chunks")
    completion_type = getattr(getattr(sdk.openai, "types", None), "Completion", None)
    for i, chunk in enumerate(chunks):
        what = f"chunk {i} of {len(chunks)}"
        if completion_type is not None and not isinstance(chunk, completion_type):
            raise CheckFailure(req, f"the SDK yielded {what} as {type(chunk).__name__}; expected its Completion type",
                               observed=type(chunk).__name__, expected="openai.types.Completion")
        checks.sdk_type_accepts(req, f"{what} (Completion)", _completion_chunk_errors(sdk, chunk), sdk.dump(chunk))
        checks.equals(req, f"{what}: object", chunk.object, "text_completion")
        for choice in chunk.choices or []:
            if not isinstance(choice.index, int) or isinstance(choice.index, bool):
                raise CheckFailure(req, f"{what}: choices[].index is {choice.index!r}; expected an integer",
                                   observed=sdk.dump(chunk), expected="an integer index")
            if not isinstance(choice.text, str):
                raise CheckFailure(req, f"{what}: choices[{choice.index}].text is {clip(choice.text)}; expected a "
                                   "string", observed=sdk.dump(chunk), expected="a string")
    text = "".join(c.text for chunk in chunks for c in (chunk.choices or []) if c.index == 0)
    finishes = [c.finish_reason for chunk in chunks for c in (chunk.choices or [])
                if c.index == 0 and c.finish_reason is not None]
    return text, _streamed_choice0(req, "the text joined from the SDK's chunks", text, finishes)


def _streamed_choice0(req: str, what: str, text: str, finishes: list[Any]) -> Any:
    """A streamed choice 0: non-empty joined text and exactly one valid finish_reason (returned)."""
    checks.nonempty_text(req, what, text)
    if len(finishes) != 1:
        raise CheckFailure(req, f"choice 0 received {len(finishes)} finish_reason(s) {finishes}; expected one",
                           observed=finishes, expected="exactly one")
    checks.finish_reason_in(req, "the streamed choice 0", finishes[0])
    return finishes[0]


@scenario("sdk.python.stream_completions", covers=["sdk.python.stream_completions"])
def sdk_python_stream_completions(ctx: Context) -> None:
    """A streamed completion iterated with the SDK: typed Completion chunks whose text joins into the greedy
    non-streamed text (the determinism guard re-runs the baseline before calling a difference a failure)."""
    req = "sdk.python.stream_completions"
    with python_sdk(ctx) as sdk:
        def create(**extra: Any) -> Any:
            return sdk.client.completions.create(model=ctx.target.model, prompt=SEED_PROMPT, max_tokens=MAX_TOKENS,
                                                 temperature=0, **extra)

        def greedy() -> Any:
            return _choice0(req, "the Completion", sdk.call(req, "completions.create", create))

        def check() -> None:
            chunks = _iterate(sdk, req, "streamed completions.create", lambda: create(stream=True))
            text, finish = _streamed_completion(sdk, req, chunks)
            base = greedy()
            def rerun() -> tuple[Any, Any]:
                again = greedy()
                return again.text, again.finish_reason

            if (text, finish) != (base.text, base.finish_reason) and not reproduces(
                    rerun, (base.text, base.finish_reason)):
                raise NotApplicable(NONDETERMINISTIC)
            stream_checks.same_as_non_stream(req, text, finish, base.text, base.finish_reason)

        judge(ctx, req, sdk.info, check)


def _summary(chunk: Any, sdk: PythonSDK) -> dict[str, Any]:
    choices = getattr(chunk, "choices", None) or []
    usage = getattr(chunk, "usage", None)  # the seed: "it can be accessed directly"
    return {
        "finish": any(getattr(c, "finish_reason", None) is not None for c in choices),
        "choices": len(choices),
        "usage": sdk.dump(usage) if usage is not None else None,
    }


@scenario("sdk.python.stream_usage", covers=["sdk.python.stream_usage"])
def sdk_python_stream_usage(ctx: Context) -> None:
    """chunk.usage read through the SDK's chunk objects: counts on the final chunk only (per profile)."""
    req = "sdk.python.stream_usage"
    mode = ctx.behaviour("stream.usage")
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if mode == "include_usage" else {}
    with python_sdk(ctx) as sdk:
        def check() -> None:
            chat = _iterate(sdk, req, "streamed chat.completions.create", lambda: sdk.client.chat.completions.create(
                model=ctx.target.chat_model, messages=SEED_MESSAGES, max_tokens=MAX_TOKENS, temperature=0,
                stream=True, **extra))
            comp = _iterate(sdk, req, "streamed completions.create", lambda: sdk.client.completions.create(
                model=ctx.target.model, prompt=SEED_PROMPT, max_tokens=MAX_TOKENS, temperature=0, stream=True,
                **extra))
            for what, chunks in (("chat", chat), ("completions", comp)):
                try:
                    checks.stream_usage(req, [_summary(c, sdk) for c in chunks], mode)
                except CheckFailure as failure:
                    failure.message = f"streamed {what}: {failure.message}"
                    raise

        judge(ctx, req, sdk.info, check)


@scenario("sdk.python.n", covers=["sdk.python.n"])
def sdk_python_n(ctx: Context) -> None:
    """n=2 through the SDK gives two choices, indexes 0 and 1 (completions and chat)."""
    req = "sdk.python.n"
    with python_sdk(ctx) as sdk:
        def check() -> None:
            comp = sdk.call(req, "completions.create(n=2)", lambda: sdk.client.completions.create(
                model=ctx.target.model, prompt=SEED_PROMPT, max_tokens=8, temperature=0, n=2))
            checks.sdk_type_accepts(req, "the Completion", sdk.type_errors(comp), sdk.dump(comp))
            checks.choice_indexes(req, [c.index for c in comp.choices or []], 2)
            chat = sdk.call(req, "chat.completions.create(n=2)", lambda: sdk.client.chat.completions.create(
                model=ctx.target.chat_model, messages=SEED_MESSAGES, max_tokens=8, temperature=0, n=2))
            checks.sdk_type_accepts(req, "the ChatCompletion", sdk.type_errors(chat), sdk.dump(chat))
            checks.choice_indexes(req, [c.index for c in chat.choices or []], 2)

        judge(ctx, req, sdk.info, check)


def _pick_stop(text: str) -> str | None:
    """A word from the middle of the greedy output (so the cut is visible either way)."""
    words = [w for w in text.split() if w.strip(".,;:!?'\"")]
    if len(words) < 2:
        return None
    return words[len(words) // 2]


@scenario("sdk.python.stop", covers=["sdk.python.stop"])
def sdk_python_stop(ctx: Context) -> None:
    """stop=[word] through the SDK: generation ends there; the word kept or dropped as the profile says."""
    req = "sdk.python.stop"
    include = ctx.behaviour("stop.output") == "include"
    with python_sdk(ctx) as sdk:
        def greedy(**extra: Any) -> Any:
            return sdk.call(req, "completions.create", lambda: sdk.client.completions.create(
                model=ctx.target.model, prompt=S.PROMPT, max_tokens=S.MAX_TOKENS, temperature=0, **extra))

        def check() -> None:
            base = _choice0(req, "the Completion", greedy())
            stop = _pick_stop(base.text or "")
            if stop is None:
                raise NotApplicable(f"the greedy output {base.text!r} is too short to draw a stop sequence from")
            expected = stop_checks.expected_stopped_text(base.text, [stop], include)
            assert expected is not None
            want, hit = expected
            stopped = _choice0(req, "the Completion", greedy(stop=[stop]))
            if stopped.text != want and not reproduces(
                    lambda: _choice0(req, "the Completion", greedy()).text, base.text):
                raise NotApplicable(NONDETERMINISTIC)
            (stop_checks.text_ends_with_stop if include else stop_checks.text_excludes_stop)(req, stopped.text, hit)
            stop_checks.truncated_at(req, stopped.text, want, base.text, [stop])
            at_end = base.text.find(hit) + len(hit) == len(base.text)
            allowed = ["stop", "length"] if at_end and base.finish_reason == "length" else ["stop"]
            stop_checks.finish_reason_is(req, stopped.finish_reason, allowed)

        judge(ctx, req, sdk.info, check)


ERRORS = ["sdk.python.errors.authentication", "sdk.python.errors.bad_request", "sdk.python.errors.not_found"]


@scenario("sdk.python.errors", covers=ERRORS)
def sdk_python_errors(ctx: Context) -> None:
    """A wrong key, a bad request and an unknown model raise the SDK's typed exceptions with the server's message."""
    auth, bad, missing = ERRORS

    def expect_raise(sdk: PythonSDK, req: str, exception: str, status: int, fn: Callable[[], Any]) -> None:
        raised: BaseException | None = None
        try:
            fn()
        except Exception as exc:
            raised = exc
        checks.typed_error(req, raised, exception, status, sdk.recorder.last_error_message())

    if not ctx.target.api_key:
        ctx.not_applicable(auth, "no API key was given for this endpoint: it needs none, so a wrong key cannot "
                                 "be refused")
    elif ctx.applies(auth):
        with python_sdk(ctx, api_key=WRONG_KEY) as wrong:
            probe = ctx.client.post("/completions", {"model": ctx.target.model, "prompt": SEED_PROMPT, "max_tokens": 1,
                                                     "temperature": 0},
                                    auth=False, headers={"Authorization": f"Bearer {WRONG_KEY}"}, cache=False,
                                    note="does the endpoint refuse a wrong key? (plain request)")
            if probe.status == 200:
                ctx.not_applicable(auth, "the endpoint accepts a wrong API key (authentication is not enforced; "
                                         "see auth.wrong_key)")
            else:
                judge(ctx, auth, wrong.info, lambda: expect_raise(
                    wrong, auth, "AuthenticationError", 401, lambda: wrong.client.completions.create(
                        model=ctx.target.model, prompt=SEED_PROMPT, max_tokens=1, temperature=0)))
    else:
        ctx.verify(auth, lambda: None)
    with python_sdk(ctx) as sdk:
        wrong_type: Any = "sixteen"
        judge(ctx, bad, sdk.info, lambda: expect_raise(
            sdk, bad, "BadRequestError", 400, lambda: sdk.client.completions.create(
                model=ctx.target.model, prompt=SEED_PROMPT, max_tokens=wrong_type, temperature=0)))
        judge(ctx, missing, sdk.info, lambda: expect_raise(
            sdk, missing, "NotFoundError", 404, lambda: sdk.client.chat.completions.create(
                model=UNKNOWN_MODEL, messages=SEED_MESSAGES, max_tokens=1, temperature=0)))


# -- the official Node SDK -------------------------------------------------------------------------------------------


def _script_timeout(ctx: Context, requests: int) -> float:
    return ctx.client.timeout * requests + 30.0


def _script_env(ctx: Context) -> dict[str, str]:
    return script_env(ctx.target.base_url, ctx.target.api_key, ctx.target.model, ctx.target.chat_model,
                      ctx.client.timeout, ctx.behaviour("stream.usage"))


def _script_failed(ctx: Context, requirements: list[str], info: ClientInfo, failure: ScriptFailure) -> None:
    status = Status.TIMEOUT if failure.timed_out else Status.ERROR
    for req in requirements:
        if ctx.applies(req):
            ctx.record(req, status, ctx.client.redact(f"{info.label}: {failure}"), info.details)
        else:
            ctx.verify(req, lambda: None)


@scenario("sdk.node.stream_usage", covers=["sdk.node.stream_usage"])
def sdk_node_stream_usage(ctx: Context) -> None:
    """The official npm `openai` package streams chat and completions; (chunk as any).usage on the final chunk."""
    req = "sdk.node.stream_usage"
    if not ctx.applies(req):
        ctx.verify(req, lambda: None)
        return
    mode = ctx.behaviour("stream.usage")
    try:
        data, version = run_node("stream_usage.mjs", _script_env(ctx), _script_timeout(ctx, 2))
    except ScriptFailure as failure:
        _script_failed(ctx, [req], ClientInfo("openai-node", "?"), failure)
        return
    info = ClientInfo("openai-node", version)
    raw = data.get("results")
    results: dict[str, Any] = raw if isinstance(raw, dict) else {}
    info.extra["result"] = ctx.client.redact(results)

    def check() -> None:
        for what in ("chat", "completions"):
            result = results.get(what) or {}
            if result.get("error"):
                raise CheckFailure(req, f"streamed {what}: the SDK threw {clip(result['error'])}",
                                   observed=result.get("error"), expected="no exception")
            try:
                checks.stream_usage(req, result.get("chunks") or [], mode)
            except CheckFailure as failure:
                failure.message = f"streamed {what}: {failure.message}"
                raise

    judge(ctx, req, info, check)


# -- the seed's samples with the legacy openai<1 SDK --------------------------------------------------------------

LEGACY = ["sdk.legacy.completions", "sdk.legacy.chat", "sdk.legacy.per_request_credentials", "sdk.legacy.stream_usage"]


def _legacy_text(req: str, result: dict[str, Any], chat: bool) -> None:
    if result.get("error"):
        raise CheckFailure(req, f"the legacy SDK raised {clip(result['error'])}", observed=result.get("error"),
                           expected="a response")
    response = result.get("response")
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CheckFailure(req, f"the response has no choices[0]: {clip(response)}", observed=response,
                           expected="choices[0]")
    if chat:
        message = choices[0].get("message")
        text = message.get("content") if isinstance(message, dict) else None
        checks.nonempty_text(req, 'choices[0]["message"]["content"]', text)
    else:
        checks.nonempty_text(req, 'choices[0]["text"]', choices[0].get("text"))


@scenario("sdk.legacy.seed_samples", covers=LEGACY)
def sdk_legacy_seed_samples(ctx: Context) -> None:
    """The seed's own samples with openai<1: module-level and per-request api_base/api_key, chunk["usage"]."""
    if not any(ctx.applies(req) for req in LEGACY):
        for req in LEGACY:
            ctx.verify(req, lambda: None)
        return
    try:
        data = run_legacy(_script_env(ctx), _script_timeout(ctx, 4))
    except ScriptFailure as failure:
        _script_failed(ctx, LEGACY, ClientInfo("openai-python-legacy", "?"), failure)
        return
    raw = data.get("results")
    results: dict[str, Any] = raw if isinstance(raw, dict) else {}
    base = ClientInfo(str(data.get("client") or "openai-python-legacy"), str(data.get("version") or "?"))

    def info(key: str) -> ClientInfo:
        return ClientInfo(base.name, base.version, {"result": ctx.client.redact(results.get(key))})

    completions, chat, per_request, stream_usage = LEGACY
    judge(ctx, completions, info("completions"),
          lambda: _legacy_text(completions, results.get("completions") or {}, chat=False))
    judge(ctx, chat, info("chat"), lambda: _legacy_text(chat, results.get("chat") or {}, chat=True))
    judge(ctx, per_request, info("per_request"),
          lambda: _legacy_text(per_request, results.get("per_request") or {}, chat=True))
    mode = ctx.behaviour("stream.usage")

    def check_stream() -> None:
        stream = results.get("stream_usage") or {}
        if stream.get("error"):
            raise CheckFailure(stream_usage, f"iterating the stream, the legacy SDK raised {clip(stream['error'])}",
                               observed=stream.get("error"), expected="no exception")
        chunks = stream.get("chunks") or []
        if mode == "final_chunk":
            missing = [i for i, c in enumerate(chunks) if not c.get("usage_key")]
            if missing:
                raise CheckFailure(stream_usage, f'the seed\'s loop print(chunk["usage"]) raises KeyError on chunk(s) '
                                   f"{missing[:10]} of {len(chunks)}: those chunks have no usage key",
                                   observed=missing, expected='"usage" on every chunk (null until the final one)')
        checks.stream_usage(stream_usage, chunks, mode)

    judge(ctx, stream_usage, info("stream_usage"), check_stream)


# -- langchain-openai ------------------------------------------------------------------------------------------------


def _langchain(ctx: Context) -> tuple[Any, ClientInfo, Recorder, Any]:
    try:
        module = importlib.import_module("langchain_openai")
    except ImportError:
        raise Skipped("langchain-openai is not installed (pip install langchain-openai)") from None
    openai = _openai_module()
    try:
        version = importlib.metadata.version("langchain-openai")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    info = ClientInfo("langchain-openai", version, {"openai": str(openai.__version__)})
    recorder = _recorder(ctx, f"through {info.label}")
    return module, info, recorder, openai.DefaultHttpxClient(event_hooks=recorder.hooks)


def _langchain_kwargs(ctx: Context, model: str, http: Any) -> dict[str, Any]:
    return {"base_url": ctx.target.base_url, "api_key": ctx.target.api_key or NO_KEY, "model": model,
            "max_retries": 0, "timeout": ctx.client.timeout, "temperature": 0, "max_tokens": MAX_TOKENS,
            "http_client": http}


def _langchain_call(req: str, info: ClientInfo, doing: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except CheckFailure:
        raise
    except Exception as exc:
        raise _from_exception(req, info, exc, doing) from None


@scenario("sdk.langchain.chat", covers=["sdk.langchain.chat", "sdk.langchain.stream"])
def sdk_langchain_chat(ctx: Context) -> None:
    """ChatOpenAI(base_url=...).invoke and .stream with the seed's messages."""
    chat_req, stream_req = "sdk.langchain.chat", "sdk.langchain.stream"
    module, info, _recorder_, http = _langchain(ctx)
    try:
        llm = module.ChatOpenAI(**_langchain_kwargs(ctx, ctx.target.chat_model, http))
        messages = [("system", SEED_MESSAGES[0]["content"]), ("human", SEED_MESSAGES[1]["content"])]

        def check_invoke() -> None:
            message = _langchain_call(chat_req, info, "ChatOpenAI.invoke", lambda: llm.invoke(messages))
            checks.nonempty_text(chat_req, "the AIMessage content", message.content)

        def check_stream() -> None:
            chunks = _langchain_call(stream_req, info, "ChatOpenAI.stream", lambda: list(llm.stream(messages)))
            if not chunks:
                raise CheckFailure(stream_req, "ChatOpenAI.stream yielded no chunks", observed=[], expected="chunks")
            text = "".join(c.content for c in chunks if isinstance(c.content, str))
            checks.nonempty_text(stream_req, "the content joined from the streamed chunks", text)

        judge(ctx, chat_req, info, check_invoke)
        judge(ctx, stream_req, info, check_stream)
    finally:
        with contextlib.suppress(Exception):
            http.close()


LANGCHAIN_COMPLETIONS = ["sdk.langchain.completions", "sdk.langchain.stream_completions"]


@scenario("sdk.langchain.completions", covers=LANGCHAIN_COMPLETIONS)
def sdk_langchain_completions(ctx: Context) -> None:
    """langchain-openai's OpenAI LLM (sends default penalties): .invoke("The quick brown fox"), then .stream of the
    same prompt, whose chunks join into the invoked text (the determinism guard re-invokes before failing)."""
    req, stream_req = LANGCHAIN_COMPLETIONS
    module, info, recorder, http = _langchain(ctx)
    try:
        llm = module.OpenAI(**_langchain_kwargs(ctx, ctx.target.model, http))
        invoked: list[Any] = []

        def check() -> None:
            try:
                text = _langchain_call(req, info, "OpenAI.invoke", lambda: llm.invoke(SEED_PROMPT))
            finally:
                sent = recorder.exchanges[-1].request.body if recorder.exchanges else None
                if isinstance(sent, dict):
                    info.extra["request_options"] = sorted(k for k in sent if k not in ("model", "prompt"))
            checks.nonempty_text(req, "the LLM's text", text)
            invoked.append(text)

        def check_stream() -> None:
            chunks = _langchain_call(stream_req, info, "OpenAI.stream", lambda: list(llm.stream(SEED_PROMPT)))
            if not chunks:
                raise CheckFailure(stream_req, "OpenAI.stream yielded no chunks", observed=[], expected="chunks")
            odd = [c for c in chunks if not isinstance(c, str)]
            if odd:
                raise CheckFailure(stream_req, f"OpenAI.stream yielded {type(odd[0]).__name__} chunk(s); expected "
                                   f"strings: {clip(odd[0])}", observed=repr(odd[0]), expected="str chunks")
            text = "".join(chunks)
            checks.nonempty_text(stream_req, "the text joined from the streamed chunks", text)
            if not invoked:
                return  # .invoke failed (sdk.langchain.completions says why): nothing to compare with
            if text != invoked[0]:
                if not reproduces(lambda: _langchain_call(stream_req, info, "OpenAI.invoke",
                                                          lambda: llm.invoke(SEED_PROMPT)), invoked[0]):
                    raise NotApplicable(NONDETERMINISTIC)
                raise CheckFailure(stream_req, f"the streamed text {clip(text)} differs from the invoked text "
                                   f"{clip(invoked[0])}", observed=text, expected=invoked[0])

        judge(ctx, req, info, check)
        judge(ctx, stream_req, info, check_stream)
    finally:
        with contextlib.suppress(Exception):
            http.close()
