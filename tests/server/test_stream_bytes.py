"""The streaming fast paths write exactly the bytes the plain dict + json.dumps route would.

Chunks are assembled from pre-serialized pieces (`ChunkFrame`, the endpoints' `make_choice`) and
single-choice streams read the engine directly (no merge queue): these tests pin the output to
the canonical form (compact JSON, keys in the documented order, one event per piece) with an
engine that yields awkward text (quotes, backslashes, control characters, U+2028, multi-byte
characters split over tokens), and check that a stream closed early closes its engine iterators.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from reference_server.app import create_app
from reference_server.engine.types import PromptLogprob, SamplingParams, TokenEvent
from reference_server.entrypoints.openai.sse import ChunkFrame, dumps, dumps_str, sse_data

from .conftest import client_for
from .helpers import parse_sse, stream_text

pytestmark = pytest.mark.anyio

AWKWARD = 'Quote " back\\slash\ttab\nline \u2028 sep \u0001 ctl héllo wörld 日本語 ✓ 🦊🦁 — «q» ½ end.'

COMPLETION_CHOICE = ["finish_reason", "index", "logprobs", "text"]
CHAT_CHOICE = ["delta", "logprobs", "finish_reason", "index"]


class ScriptedEngine:
    """Yields the tiny tokenizer's ids of AWKWARD (then EOS), recording how each stream ended."""

    context_length = 256
    model_name = "tiny"
    device = "cpu"
    dtype = "float32"

    def __init__(self, ids: list[int], eos: int, pause: asyncio.Event | None = None) -> None:
        self.ids = ids
        self.eos = eos
        self.pause = pause
        self.started = 0
        self.closed = 0
        self.finished = 0

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[TokenEvent]:
        self.started += 1
        return _Stream(self, self._run(params))

    async def _run(self, params: SamplingParams) -> AsyncGenerator[TokenEvent, None]:
        for k in range(params.max_new_tokens):
            await asyncio.sleep(0)
            if self.pause is not None and k == 2:
                await self.pause.wait()
            if k >= len(self.ids):
                yield TokenEvent(self.eos, -0.125, [(self.eos, -0.125)][: params.top_logprobs], "stop")
                self.finished += 1
                return
            t = self.ids[k]
            top = [(t, -0.5), ((t + 1) % 100, -1.25), ((t + 2) % 100, -2.0 / 3)][: params.top_logprobs]
            last = k == params.max_new_tokens - 1
            yield TokenEvent(t, -0.5 - k / 7, top, "length" if last else None)
        self.finished += 1

    async def prompt_logprobs(self, prompt_ids: list[int], top_logprobs: int) -> list[PromptLogprob]:
        return [PromptLogprob(t, None if i == 0 else -0.5, [] if i == 0 else [(t, -0.5)]) for i, t in enumerate(prompt_ids)]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class _Stream:
    """What `generate()` returns: the events, and `aclose()` (the engine's cancel) counted once."""

    def __init__(self, engine: ScriptedEngine, events: AsyncGenerator[TokenEvent, None]) -> None:
        self.engine = engine
        self.events = events
        self.closed = False

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> TokenEvent:
        return await self.events.__anext__()

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.engine.closed += 1
        await self.events.aclose()


@pytest.fixture
def scripted(loaded: Any) -> ScriptedEngine:
    ids = [int(t) for t in loaded.tokenizer.encode(AWKWARD, add_special_tokens=False)]
    return ScriptedEngine(ids, min(loaded.eos_token_ids))


def _events(text: str) -> list[str]:
    assert text.endswith("data: [DONE]\n\n")
    return [block[len("data: ") :] for block in text.split("\n\n")[:-2]]


def _assert_canonical(events: list[str], chat: bool) -> list[dict[str, Any]]:
    """Each event is compact JSON as json.dumps writes it, keys in the documented order."""
    chunks = []
    for raw in events:
        chunk = json.loads(raw)
        assert json.dumps(chunk, ensure_ascii=False, separators=(",", ":")) == raw
        keys = ["id", "choices", "created", "model", "system_fingerprint", "object"]
        assert list(chunk)[:6] == keys and set(chunk) <= {*keys, "usage"}
        for choice in chunk["choices"]:
            assert list(choice) == (CHAT_CHOICE if chat else COMPLETION_CHOICE)
        chunks.append(chunk)
    return chunks


PATHS = ["/v1/completions", "/v1/chat/completions"]


def _body(path: str, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "tiny", "max_tokens": 120, "stream": True, **kw}
    if path == "/v1/completions":
        body.setdefault("prompt", "The lion")
    else:
        body.setdefault("messages", [{"role": "user", "content": "Tell me a fable."}])
    return body


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("profile", ["fireworks", "openai"])
@pytest.mark.parametrize(
    "extra",
    [{}, {"n": 2}, {"stop": ["wörld", "🦁"]}, {"stop": "zz", "n": 3}, {"max_tokens": 5}, {"stream_options": {"include_usage": True}}],
)
async def test_streamed_events_are_canonical_and_match_non_streamed(
    make_config: Any, scripted: ScriptedEngine, path: str, profile: str, extra: dict[str, Any]
) -> None:
    app = create_app(make_config(profile, engine=scripted))
    async with client_for(app) as c:
        r = await c.post(path, json=_body(path, **extra))
        assert r.status_code == 200, r.text
        chunks = _assert_canonical(_events(r.text), chat=path.endswith("chat/completions"))
        plain = {k: v for k, v in _body(path, **extra).items() if k not in ("stream", "stream_options")}
        whole = (await c.post(path, json=plain)).json()
    assert scripted.closed == scripted.started
    for choice in whole["choices"]:
        expected = choice["message"]["content"] if "message" in choice else choice["text"]
        assert stream_text(chunks, choice["index"]) == expected
        finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["index"] == choice["index"]]
        assert [f for f in finishes if f] == [choice["finish_reason"]]
    if profile == "fireworks":
        assert chunks[-1]["usage"] == whole["usage"]


@pytest.mark.parametrize("path", PATHS)
async def test_logprobs_and_echo_streams_are_canonical(make_config: Any, scripted: ScriptedEngine, path: str) -> None:
    app = create_app(make_config("openai", engine=scripted))
    extra: dict[str, Any] = {"logprobs": 2, "echo": True} if path == "/v1/completions" else {"logprobs": True, "top_logprobs": 2}
    async with client_for(app) as c:
        for n in (1, 2):
            r = await c.post(path, json=_body(path, n=n, **extra))
            assert r.status_code == 200, r.text
            chunks = _assert_canonical(_events(r.text), chat=path.endswith("chat/completions"))
            first = [ch for c in chunks for ch in c["choices"] if "role" in ch.get("delta", {}) or ch.get("text") == "The lion"]
            assert len(first) == n
            rest = [ch for c in chunks for ch in c["choices"] if not any(ch is f for f in first)]
            assert rest and all(ch["logprobs"] is not None for ch in rest)


async def test_a_token_without_text_still_gets_its_chunk(make_config: Any, scripted: ScriptedEngine) -> None:
    """Byte-level tokens that end inside a character release no text but are still sent (with logprobs)."""
    app = create_app(make_config("fireworks", engine=scripted))
    async with client_for(app) as c:
        r = await c.post("/v1/completions", json=_body("/v1/completions"))
    chunks, done = parse_sse(r.text)
    assert done
    texts = [ch["text"] for c in chunks for ch in c["choices"]]
    assert "" in texts[:-1]  # the 🦊 is split over several byte-level tokens
    assert "".join(texts) == AWKWARD


def test_chunk_frame_matches_json_dumps() -> None:
    usage = {"completion_tokens": 3, "prompt_tokens": 2, "total_tokens": 5}
    choices = [{"finish_reason": None, "index": 0, "logprobs": None, "text": AWKWARD}, {"index": 1, "x": [1.5, None]}]
    for with_usage in (False, True):
        template: dict[str, Any] = {
            "id": "cmpl-\u00e9\"x", "choices": [], "created": 17, "model": "m/ö", "system_fingerprint": None,
            "object": "text_completion",
        }
        if with_usage:
            template["usage"] = None
        frame = ChunkFrame(template)
        for picked in ([], choices[:1], choices):
            serialized = [dumps(c) for c in picked]
            assert frame.event(serialized) == sse_data({**template, "choices": picked})
            assert frame.head + ",".join(serialized) + frame.tail == sse_data({**template, "choices": picked})
            expected = {**template, "choices": picked, **({"usage": usage} if with_usage else {})}
            assert frame.event(serialized, usage) == sse_data(expected)
    for s in ["", AWKWARD, "\ud800", "\x7f\x00"]:
        assert dumps_str(s) == json.dumps(s, ensure_ascii=False) == dumps(s)


class _AsgiCall:
    """Calls the app directly; the client disconnects once `after` body messages were sent."""

    def __init__(self, app: Any, path: str, body: dict[str, Any], after: int) -> None:
        self.app = app
        self.path = path
        self.body = json.dumps(body).encode()
        self.after = after
        self.sent: list[bytes] = []
        self.enough = asyncio.Event()
        self.read = False

    async def receive(self) -> dict[str, Any]:
        if not self.read:
            self.read = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.enough.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            self.sent.append(message["body"])
            if len(self.sent) >= self.after:
                self.enough.set()
                await asyncio.sleep(0.01)  # a slow socket: the disconnect lands while sending

    async def run(self) -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": self.path, "raw_path": self.path.encode(),
            "root_path": "", "query_string": b"", "server": ("test", 80), "client": ("test", 1),
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())],
        }
        await asyncio.wait_for(self.app(scope, self.receive, self.send), 30)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("after", [1, 2])
async def test_disconnect_closes_every_engine_iterator(
    make_config: Any, loaded: Any, path: str, n: int, after: int
) -> None:
    """Whether the client leaves after the first chunk (chat's role chunk, before any token) or
    mid-generation (the engine stalls on its third token), every engine stream is closed."""
    ids = [int(t) for t in loaded.tokenizer.encode(AWKWARD, add_special_tokens=False)]
    engine = ScriptedEngine(ids, min(loaded.eos_token_ids), pause=asyncio.Event())
    app = create_app(make_config("fireworks", engine=engine))
    call = _AsgiCall(app, path, _body(path, n=n), after)
    await call.run()  # closed by the time the response returns, not later by garbage collection
    assert engine.started == n
    assert engine.closed == n and engine.finished == 0
    assert b"[DONE]" not in b"".join(call.sent)
