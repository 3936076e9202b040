"""Small helpers for the server tests: SSE parsing, error-shape checks, requests."""

from __future__ import annotations

import json
from typing import Any

import httpx

from conformance import schemas

MODEL = "tiny"


def parse_sse(text: str) -> tuple[list[dict[str, Any]], bool]:
    """(JSON payloads of the `data:` events, whether the stream ended with [DONE])."""
    payloads: list[dict[str, Any]] = []
    done = False
    for block in text.split("\n\n"):
        block = block.strip("\n")
        if not block:
            continue
        lines = block.split("\n")
        assert len(lines) == 1 and lines[0].startswith("data: "), f"bad SSE event {block!r}"
        data = lines[0][len("data: ") :]
        assert not done, "data after [DONE]"
        if data == "[DONE]":
            done = True
            continue
        payloads.append(json.loads(data))
    return payloads, done


def assert_error(resp: httpx.Response, status: int, *, param: Any = ..., code: Any = ..., type: Any = ...) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert schemas.validate("error", body) == [], body
    assert list(body["error"]) == ["message", "type", "param", "code"], body
    err = body["error"]
    if param is not ...:
        assert err["param"] == param, err
    if code is not ...:
        assert err["code"] == code, err
    if type is not ...:
        assert err["type"] == type, err
    return err


async def complete(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("model", MODEL)
    return await client.post("/v1/completions", json=body)


async def chat(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("model", MODEL)
    body.setdefault("messages", [{"role": "user", "content": "Tell me a fable about a fox."}])
    return await client.post("/v1/chat/completions", json=body)


async def stream(client: httpx.AsyncClient, path: str, **body: Any) -> tuple[httpx.Response, list[dict[str, Any]]]:
    body.setdefault("model", MODEL)
    if path.endswith("chat/completions"):
        body.setdefault("messages", [{"role": "user", "content": "Tell me a fable about a fox."}])
    body["stream"] = True
    resp = await client.post(path, json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    chunks, done = parse_sse(resp.text)
    assert done, resp.text[-300:]
    return resp, chunks


def stream_text(chunks: list[dict[str, Any]], index: int = 0) -> str:
    out = ""
    for c in chunks:
        for ch in c.get("choices", []):
            if ch["index"] != index:
                continue
            if "delta" in ch:
                out += ch["delta"].get("content") or ""
            else:
                out += ch["text"]
    return out
