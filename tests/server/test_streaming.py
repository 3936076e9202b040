"""Streaming: framing, usage placement per profile (stream.usage axis), chunk invariants."""

from __future__ import annotations

from typing import Any

import pytest

from conformance import schemas

from .helpers import assert_error, chat, complete, stream

pytestmark = pytest.mark.anyio

PATHS = ["/v1/completions", "/v1/chat/completions"]


def _body(path: str, **kw: Any) -> dict[str, Any]:
    if path == "/v1/completions":
        kw.setdefault("prompt", "The lion and the mouse")
    kw.setdefault("max_tokens", 10)
    kw.setdefault("temperature", 0)
    return kw


def _schema(path: str) -> str:
    return "completion.chunk" if path == "/v1/completions" else "chat.completion.chunk"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("n", [1, 2])
async def test_fireworks_usage_on_final_chunk(fw: Any, path: str, n: int) -> None:
    _, chunks = await stream(fw, path, **_body(path, n=n))
    assert all("usage" in c for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["usage"] is not None and schemas.usage_errors(last["usage"]) == []
    assert sorted(c["index"] for c in last["choices"] if c["finish_reason"]) == list(range(n))
    for c in chunks:
        assert schemas.validate(_schema(path), c, overlay="fireworks") == [], c


@pytest.mark.parametrize("path", PATHS)
async def test_openai_usage_only_with_include_usage(oa: Any, path: str) -> None:
    _, chunks = await stream(oa, path, **_body(path))
    assert all(c.get("usage") is None for c in chunks)
    _, chunks = await stream(oa, path, **_body(path, stream_options={"include_usage": True}))
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    for c in chunks:
        assert schemas.validate(_schema(path), c, overlay="include_usage") == [], c


@pytest.mark.parametrize("path", PATHS)
async def test_stream_options_requires_stream(client: Any, path: str) -> None:
    r = await client.post(path, json={**_body(path, stream_options={"include_usage": True}), "model": "tiny",
                                      **({"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {})})
    assert_error(r, 400, param="stream_options")


@pytest.mark.parametrize("path", PATHS)
async def test_chunk_invariants(client: Any, path: str) -> None:
    resp, chunks = await stream(client, path, **_body(path, n=2))
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    for c in chunks:
        assert schemas.validate(_schema(path), c) == []
    with_choices = [ch for c in chunks for ch in c["choices"]]
    assert schemas.choice_index_errors(with_choices, 2, repeats=True) == []
    for i in range(2):
        mine = [ch for ch in with_choices if ch["index"] == i]
        assert sum(1 for ch in mine if ch["finish_reason"]) == 1
        if "delta" in mine[0]:
            assert mine[0]["delta"].get("role") == "assistant"
            assert all("role" not in ch["delta"] for ch in mine[1:])
    assert resp.text.endswith("data: [DONE]\n\n")


async def test_validation_failure_on_stream_is_plain_4xx(client: Any) -> None:
    r = await complete(client, prompt="x", stream=True, temperature=5)
    assert_error(r, 400, param="temperature")
    r = await chat(client, stream=True, model="nope")
    assert_error(r, 404, code="model_not_found")


async def test_best_of_cannot_stream(oa: Any) -> None:
    r = await complete(oa, prompt="x", stream=True, best_of=2, n=1)
    assert_error(r, 400, param="best_of")
