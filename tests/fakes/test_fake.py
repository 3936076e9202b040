"""The fake endpoint itself: valid shapes per profile, and every fault knob really breaks its behaviour."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.append(str(Path(__file__).resolve().parent.parent))  # `fakes` (appended: project packages win)

from conformance import schemas  # noqa: E402
from fakes.server import (  # noqa: E402
    DEFAULT_KEY,
    FAULT_KNOBS,
    FakeConfig,
    serve_fake,
    tokenize,
)

MODEL = "fake-model"
HEADERS = {"Authorization": f"Bearer {DEFAULT_KEY}"}


class Api:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.http = httpx.Client(base_url=base_url, headers=HEADERS, timeout=timeout)

    def post(self, path: str, **body: Any) -> httpx.Response:
        body.setdefault("model", MODEL)
        return self.http.post(path, json=body)

    def cmpl(self, **body: Any) -> dict[str, Any]:
        body.setdefault("prompt", "The quick brown fox")
        body.setdefault("temperature", 0)
        r = self.post("/completions", **body)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def chat(self, **body: Any) -> dict[str, Any]:
        body.setdefault("messages", [{"role": "user", "content": "Say this is a test"}])
        body.setdefault("temperature", 0)
        r = self.post("/chat/completions", **body)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def stream_raw(self, path: str, **body: Any) -> tuple[httpx.Response, str]:
        body.setdefault("model", MODEL)
        body.setdefault("temperature", 0)
        body["stream"] = True
        if path == "/completions":
            body.setdefault("prompt", "The quick brown fox")
        else:
            body.setdefault("messages", [{"role": "user", "content": "Say this is a test"}])
        with self.http.stream("POST", path, json=body) as r:
            raw = r.read().decode()
        return r, raw

    def stream(self, path: str, **body: Any) -> tuple[httpx.Response, list[dict[str, Any]], bool]:
        r, raw = self.stream_raw(path, **body)
        assert r.status_code == 200, raw
        events = parse_sse(raw)
        done = events and events[-1] == "[DONE]"
        return r, [json.loads(e) for e in events if e != "[DONE]"], bool(done)


def parse_sse(raw: str) -> list[str]:
    """Strict: every event is exactly one `data: ` line followed by a blank line."""
    out = []
    for block in raw.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: ") and "\n" not in block, f"bad framing: {block[:200]!r}"
        out.append(block[len("data: "):])
    return out


def joined(chunks: list[dict[str, Any]], chat: bool, index: int = 0) -> str:
    out = []
    for c in chunks:
        for ch in c["choices"]:
            if ch["index"] == index:
                out.append((ch["delta"].get("content") or "") if chat else ch["text"])
    return "".join(out)


@pytest.fixture(scope="module")
def fireworks() -> Iterator[Api]:
    with serve_fake(FakeConfig(profile="fireworks")) as url:
        api = Api(url)
        yield api
        api.http.close()


@pytest.fixture(scope="module")
def openai() -> Iterator[Api]:
    with serve_fake(FakeConfig(profile="openai")) as url:
        api = Api(url)
        yield api
        api.http.close()


def faulty(**knobs: Any) -> Any:
    """Context manager: an Api on a fake with the given knobs (profile defaults to openai)."""
    knobs.setdefault("profile", "openai")
    timeout = knobs.pop("_timeout", 5.0)

    class _Ctx:
        def __enter__(self) -> Api:
            self.cm = serve_fake(FakeConfig(**knobs))
            self.api = Api(self.cm.__enter__(), timeout)
            return self.api

        def __exit__(self, *exc: Any) -> None:
            self.api.http.close()
            self.cm.__exit__(*exc)

    return _Ctx()


# -------------------------------------------------------------------------------------------
# the toy model and tokenizer
# -------------------------------------------------------------------------------------------


def test_tokenizer_round_trips_and_pieces_are_short() -> None:
    text = "Hello, wonderful world!\n  It's 2024; naïve café.\t"
    pieces = tokenize(text)
    assert "".join(pieces) == text
    assert all(1 <= len(p) <= 4 for p in pieces)
    assert tokenize(" quick") == [" qui", "ck"]


def test_every_knob_is_documented_as_a_field() -> None:
    assert {"no_done", "hang", "reset", "stop_mode", "reject_defaults"} <= set(FAULT_KNOBS)
    with pytest.raises(ValueError):
        FakeConfig(stop_mode="sometimes")


# -------------------------------------------------------------------------------------------
# good behaviour, both profiles
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["fireworks", "openai"])
def test_shapes_validate(profile: str, request: pytest.FixtureRequest) -> None:
    api: Api = request.getfixturevalue(profile)
    overlay = "fireworks" if profile == "fireworks" else "include_usage"
    models = api.http.get("/models").json()
    assert schemas.validate("model.list", models) == []
    assert models["data"][0]["context_length"] == 512
    c = api.cmpl(max_tokens=8, logprobs=3, echo=True)
    assert schemas.validate("completion", c) == []
    assert schemas.usage_errors(c["usage"]) == []
    ch = api.chat(max_tokens=8, logprobs=True, top_logprobs=2, n=2)
    assert schemas.validate("chat.completion", ch) == []
    assert schemas.choice_index_errors(ch["choices"], 2) == []
    extra = {"stream_options": {"include_usage": True}} if profile == "openai" else {}
    for path, name in (("/completions", "completion.chunk"), ("/chat/completions", "chat.completion.chunk")):
        r, chunks, done = api.stream(path, max_tokens=6, n=2, **extra)
        assert done and r.headers["content-type"].startswith("text/event-stream")
        assert len({c["id"] for c in chunks}) == 1
        for c in chunks:
            assert schemas.validate(name, c, overlay=overlay) == [], c
    err = api.post("/completions", prompt="x", max_tokens="many")
    assert err.status_code == 400 and schemas.validate("error", err.json()) == []


def test_usage_placement_fireworks(fireworks: Api) -> None:
    _, chunks, _ = fireworks.stream("/chat/completions", max_tokens=5)
    with_usage = [c for c in chunks if c.get("usage")]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert with_usage[0]["usage"]["completion_tokens"] == 5


def test_usage_placement_openai(openai: Api) -> None:
    _, chunks, _ = openai.stream("/completions", max_tokens=5)
    assert all(c.get("usage") is None for c in chunks)
    _, chunks, _ = openai.stream("/completions", max_tokens=5, stream_options={"include_usage": True})
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert all(c["usage"] is None for c in chunks[:-1])
    assert openai.post("/completions", prompt="x", stream_options={"include_usage": True}).status_code == 400


@pytest.mark.parametrize("profile,included", [("fireworks", True), ("openai", False)])
@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
def test_stop_per_profile_and_stream_equivalence(profile: str, included: bool, chat: bool,
                                                 request: pytest.FixtureRequest) -> None:
    api: Api = request.getfixturevalue(profile)
    call = api.chat if chat else api.cmpl
    path = "/chat/completions" if chat else "/completions"

    def text_of(d: dict[str, Any]) -> str:
        return str(d["choices"][0]["message"]["content"] if chat else d["choices"][0]["text"])

    base = text_of(call(max_tokens=30))
    # a stop that ends inside a token (3 characters straddling token boundaries), and a repeated one
    for stop in (base[4:7], base[10:12], " "):
        p = base.index(stop)
        want = base[: p + len(stop)] if included else base[:p]
        got = call(max_tokens=30, stop=[stop])
        assert text_of(got) == want, (stop, base)
        assert got["choices"][0]["finish_reason"] == "stop"
        _, chunks, _ = api.stream(path, max_tokens=30, stop=[stop])
        assert joined(chunks, chat) == want


def test_stop_only_in_prompt_does_not_stop(openai: Api) -> None:
    base = openai.cmpl(prompt="zebra crossing", max_tokens=10)
    again = openai.cmpl(prompt="zebra crossing", max_tokens=10, stop=["zebra"])
    assert again["choices"][0]["text"] == base["choices"][0]["text"]
    assert again["choices"][0]["finish_reason"] == "length"


def test_overflow_truncates_fireworks(fireworks: Api) -> None:
    prompt = " cat" * 500
    small = fireworks.cmpl(prompt=prompt, max_tokens=1)
    p = small["usage"]["prompt_tokens"]
    assert p == 500
    out = fireworks.cmpl(prompt=prompt, max_tokens=100)
    assert out["usage"]["completion_tokens"] == 512 - p
    assert out["choices"][0]["finish_reason"] == "length"
    err = fireworks.post("/completions", prompt=prompt, max_tokens=100, context_length_exceeded_behavior="error")
    assert err.status_code == 400 and err.json()["error"]["code"] == "context_length_exceeded"
    too_long = fireworks.post("/completions", prompt=" cat" * 600, max_tokens=1)
    assert too_long.status_code == 400


def test_overflow_errors_openai(openai: Api) -> None:
    prompt = " cat" * 500
    err = openai.post("/completions", prompt=prompt, max_tokens=100)
    assert err.status_code == 400
    assert err.json()["error"]["code"] == "context_length_exceeded" and "512" in err.json()["error"]["message"]
    # the Fireworks switch is ignored by the openai profile
    err = openai.post("/completions", prompt=prompt, max_tokens=100, context_length_exceeded_behavior="truncate")
    assert err.status_code == 400


@pytest.mark.parametrize("option,value", [("presence_penalty", 0.5), ("frequency_penalty", 1.0),
                                          ("best_of", 2), ("logit_bias", {"123": -100}),
                                          ("functions", [{"name": "f", "parameters": {"type": "object"}}])])
def test_unsupported_options(option: str, value: Any, fireworks: Api, openai: Api) -> None:
    path = "/chat/completions" if option == "functions" else "/completions"
    base: dict[str, Any] = {"max_tokens": 3}
    base.update({"messages": [{"role": "user", "content": "hi"}]} if path != "/completions" else {"prompt": "hi"})
    rejected = fireworks.post(path, **base, **{option: value})
    assert rejected.status_code == 400 and rejected.json()["error"]["param"] == option
    assert openai.post(path, **base, **{option: value}).status_code == 200
    default = {"presence_penalty": 0, "frequency_penalty": 0, "best_of": 1, "logit_bias": {}, "functions": []}[option]
    assert fireworks.post(path, **base, **{option: default}).status_code == 200


def test_errors_and_auth(openai: Api) -> None:
    bad = openai.http.post("/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and schemas.validate("error", bad.json()) == []
    unknown = openai.post("/completions", model="no-such-model", prompt="x")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    r = httpx.get(str(openai.http.base_url).rstrip("/") + "/models", timeout=5)
    assert r.status_code == 401 and schemas.validate("error", r.json()) == []
    r = openai.http.get("/no/such/route")
    assert r.status_code == 404 and schemas.validate("error", r.json()) == []
    r = httpx.get(str(openai.http.base_url).rstrip("/") + "/models", timeout=5,
                  headers={"Authorization": "Bearer sk-wrong"})
    assert r.status_code == 401
    assert openai.post("/completions", prompt="x", stop=["a", "b", "c", "d", "e"]).json()["error"]["code"] == \
        "array_above_max_length"


def test_n_and_prompt_lists(openai: Api) -> None:
    out = openai.cmpl(prompt=["one", "two"], n=2, max_tokens=3)
    assert [c["index"] for c in out["choices"]] == [0, 1, 2, 3]
    _, chunks, _ = openai.stream("/chat/completions", n=3, max_tokens=3)
    assert schemas.choice_index_errors([ch for c in chunks for ch in c["choices"]], 3, repeats=True) == []
    finals = [ch for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert sorted(ch["index"] for ch in finals) == [0, 1, 2]
    roles = [ch["index"] for c in chunks for ch in c["choices"] if ch["delta"].get("role")]
    assert sorted(roles) == [0, 1, 2]


def test_determinism_and_seeds(openai: Api) -> None:
    a = openai.cmpl(max_tokens=12)["choices"][0]["text"]
    assert a == openai.cmpl(max_tokens=12)["choices"][0]["text"]
    s1 = openai.cmpl(max_tokens=12, temperature=1, seed=7)["choices"][0]["text"]
    assert s1 == openai.cmpl(max_tokens=12, temperature=1, seed=7)["choices"][0]["text"]
    others = {openai.cmpl(max_tokens=12, temperature=1, seed=s)["choices"][0]["text"] for s in range(8, 12)}
    assert len(others | {s1}) > 1
    assert openai.post("/completions", prompt="x", seed=2**70).status_code == 400


def test_logprobs_and_echo(openai: Api) -> None:
    out = openai.cmpl(prompt="Hello there", max_tokens=4, logprobs=2, echo=True)
    choice = out["choices"][0]
    assert choice["text"].startswith("Hello there")
    lp = choice["logprobs"]
    assert "".join(lp["tokens"]) == choice["text"]
    assert lp["token_logprobs"][0] is None
    assert all(v <= 0 for v in lp["token_logprobs"][1:])
    assert all(len(t) <= 3 for t in lp["top_logprobs"][1:])
    ch = openai.chat(max_tokens=5, logprobs=True, top_logprobs=3)["choices"][0]
    assert "".join(e["token"] for e in ch["logprobs"]["content"]) == ch["message"]["content"]


# -------------------------------------------------------------------------------------------
# fault knobs: each breaks its behaviour
# -------------------------------------------------------------------------------------------


def test_knob_stop_mode_include_and_leak() -> None:
    with faulty(stop_mode="include") as api:
        base = api.cmpl(max_tokens=20)["choices"][0]["text"]
        stop = base[4:7]
        assert api.cmpl(max_tokens=20, stop=stop)["choices"][0]["text"].endswith(stop)
    with faulty(stop_mode="leak_partial") as api:
        base = api.cmpl(max_tokens=20)["choices"][0]["text"]
        stop = base[4:7]
        non_stream = api.cmpl(max_tokens=20, stop=stop)["choices"][0]["text"]
        assert not non_stream.endswith(stop)
        _, chunks, _ = api.stream("/completions", max_tokens=20, stop=stop)
        streamed = joined(chunks, chat=False)
        assert streamed != non_stream and streamed.startswith(non_stream) and stop.startswith(streamed[len(non_stream):])


def test_knob_framing() -> None:
    with faulty(no_done=True) as api:
        _, raw = api.stream_raw("/completions", max_tokens=3)
        assert "[DONE]" not in raw and raw.endswith("\n\n")
    with faulty(merged_events=True) as api:
        _, raw = api.stream_raw("/completions", max_tokens=3)
        with pytest.raises(AssertionError, match="bad framing"):
            parse_sse(raw)
    with faulty(bad_json_chunk=True) as api:
        _, raw = api.stream_raw("/completions", max_tokens=3)
        with pytest.raises(json.JSONDecodeError):
            [json.loads(e) for e in parse_sse(raw) if e != "[DONE]"]
    with faulty(wrong_content_type=True) as api:
        r, _ = api.stream_raw("/completions", max_tokens=3)
        assert r.headers["content-type"].startswith("application/json")


def test_knob_chunk_consistency() -> None:
    with faulty(inconsistent_ids=True) as api:
        _, chunks, _ = api.stream("/chat/completions", max_tokens=3)
        assert len({c["id"] for c in chunks}) == len(chunks) > 1
    with faulty(two_finish_reasons=True) as api:
        _, chunks, _ = api.stream("/chat/completions", max_tokens=3)
        assert sum(1 for c in chunks for ch in c["choices"] if ch["finish_reason"]) == 2
    with faulty(missing_role=True) as api:
        _, chunks, _ = api.stream("/chat/completions", max_tokens=3)
        assert not any(ch["delta"].get("role") for c in chunks for ch in c["choices"])
    with faulty(stream_differs=True) as api:
        _, chunks, _ = api.stream("/chat/completions", max_tokens=5)
        assert joined(chunks, chat=True) != api.chat(max_tokens=5)["choices"][0]["message"]["content"]
    with faulty(chunk_schema_violation=True) as api:
        _, chunks, _ = api.stream("/chat/completions", max_tokens=3)
        assert schemas.validate("chat.completion.chunk", chunks[0]) != []


def test_knob_usage() -> None:
    with faulty(usage_on_every_chunk=True) as api:
        _, chunks, _ = api.stream("/completions", max_tokens=3, stream_options={"include_usage": True})
        assert all(c["usage"] for c in chunks)
    with faulty(usage_missing=True) as api:
        _, chunks, _ = api.stream("/completions", max_tokens=3, stream_options={"include_usage": True})
        assert not any(c.get("usage") for c in chunks)
    with faulty(usage_missing=True, profile="fireworks") as api:
        _, chunks, _ = api.stream("/completions", max_tokens=3)
        assert not any(c.get("usage") for c in chunks)
    with faulty(usage_wrong_arithmetic=True) as api:
        assert schemas.usage_errors(api.cmpl(max_tokens=3)["usage"]) != []


def test_knob_max_tokens() -> None:
    with faulty(ignore_max_tokens=True) as api:
        assert api.cmpl(max_tokens=3)["usage"]["completion_tokens"] > 3
    with faulty(clamp_off_by_one=True, profile="fireworks") as api:
        assert api.cmpl(prompt=" cat" * 500, max_tokens=100)["usage"]["completion_tokens"] == 11
    with faulty(accept_overflow=True) as api:
        assert api.post("/completions", prompt=" cat" * 500, max_tokens=100).status_code == 200


def test_knob_errors_auth_params() -> None:
    with faulty(fastapi_422_errors=True) as api:
        r = api.post("/completions", prompt="x", max_tokens="many")
        assert r.status_code == 422 and "detail" in r.json()
    with faulty(no_auth=True) as api:
        assert httpx.get(str(api.http.base_url).rstrip("/") + "/models", timeout=5).status_code == 200
    with faulty(accept_any_key=True) as api:
        url = str(api.http.base_url).rstrip("/") + "/models"
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, timeout=5, headers={"Authorization": "Bearer sk-other"}).status_code == 200
    with faulty(unknown_model_ok=True) as api:
        assert api.post("/completions", model="no-such-model", prompt="x").status_code == 200
    with faulty(malformed_json_500=True) as api:
        r = api.http.post("/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 500 and r.headers["content-type"].startswith("text/plain")
    with faulty(html_error_page=True) as api:
        r = api.post("/completions", prompt="x")
        assert r.status_code == 500 and r.headers["content-type"].startswith("text/html")
    with faulty(reject_defaults=True, profile="fireworks") as api:
        assert api.post("/completions", prompt="x", presence_penalty=0).status_code == 400
    with faulty(echo_key_in_errors=True) as api:
        assert DEFAULT_KEY in api.post("/completions", prompt="x", max_tokens="many").text
    with faulty(stream_errors_in_band=True) as api:
        r, raw = api.stream_raw("/completions", max_tokens="many")
        assert r.status_code == 200 and '"error"' in raw


def test_knob_n_logprobs_echo_models_determinism() -> None:
    with faulty(index_gap=True) as api:
        assert [c["index"] for c in api.cmpl(n=2, max_tokens=2)["choices"]] == [0, 2]
    with faulty(logprobs_positive=True) as api:
        lp = api.cmpl(max_tokens=3, logprobs=1)["choices"][0]["logprobs"]["token_logprobs"]
        assert all(v > 0 for v in lp)
    with faulty(echo_ignored=True) as api:
        assert not api.cmpl(prompt="Hello there", max_tokens=3, echo=True)["choices"][0]["text"].startswith("Hello")
    with faulty(models_bad_shape=True) as api:
        assert schemas.validate("model.list", api.http.get("/models").json()) != []
    with faulty(nondeterministic=True) as api:
        texts = {api.cmpl(max_tokens=12)["choices"][0]["text"] for _ in range(5)}
        assert len(texts) > 1


def test_knob_transport_faults_are_bounded() -> None:
    started = time.monotonic()
    with faulty(hang="headers", _timeout=0.5) as api, pytest.raises(httpx.ReadTimeout):
        api.post("/completions", prompt="x")
    with faulty(hang="stream", _timeout=0.5) as api, pytest.raises(httpx.ReadTimeout):
        api.stream_raw("/completions", max_tokens=10)
    with faulty(reset=True) as api, pytest.raises(httpx.RemoteProtocolError):
        api.stream_raw("/completions", max_tokens=10)
    with faulty(endless_stream=True) as api:
        received = 0
        body = {"model": MODEL, "prompt": "x", "max_tokens": 3, "stream": True}
        with api.http.stream("POST", "/completions", json=body) as r:
            for part in r.iter_bytes():
                received += len(part)
                if received > 2_000_000:
                    break
        assert received > 2_000_000  # far more than 3 tokens' worth
    assert time.monotonic() - started < 20
