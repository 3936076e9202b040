"""Every error is OpenAI-shaped with the right status: 400, 401, 404, 405, 413, 429, 500, stream errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reference_server.app import create_app
from reference_server.engine.errors import EngineFailure, EngineOverloaded
from reference_server.engine.types import SamplingParams, TokenEvent

from .conftest import client_for
from .helpers import assert_error, chat, complete, parse_sse

pytestmark = pytest.mark.anyio


async def test_malformed_json(client: Any) -> None:
    r = await client.post("/v1/completions", content=b'{"model": "tiny", "prompt": ', headers={"content-type": "application/json"})
    assert_error(r, 400, type="invalid_request_error")
    r = await client.post("/v1/chat/completions", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert_error(r, 400)
    r = await client.post("/v1/chat/completions", content=b"", headers={"content-type": "application/json"})
    assert_error(r, 400)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"prompt": "x"}, "model", "missing_required_parameter"),
        ({"model": "tiny"}, "prompt", "missing_required_parameter"),
        ({"model": "tiny", "prompt": "x", "max_tokens": "5"}, "max_tokens", "invalid_type"),
        ({"model": "tiny", "prompt": "x", "temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"model": "tiny", "prompt": "x", "echo": "yes"}, "echo", "invalid_type"),
        ({"model": "tiny", "prompt": {"a": 1}}, "prompt", "invalid_type"),
        ({"model": "tiny", "prompt": "x", "stop": 5}, "stop", "invalid_type"),
        ({"model": "tiny", "prompt": "x", "stream_options": {"include_usage": "y"}}, "stream_options.include_usage", "invalid_type"),
    ],
)
async def test_completion_validation(client: Any, body: dict[str, Any], param: str, code: str) -> None:
    assert_error(await client.post("/v1/completions", json=body), 400, param=param, code=code)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "tiny"}, "messages"),
        ({"model": "tiny", "messages": []}, "messages"),
        ({"model": "tiny", "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"model": "tiny", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "tiny", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content[0].type"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 0}, "n"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "top_p": 1.5}, "top_p"),
    ],
)
async def test_chat_validation(client: Any, body: dict[str, Any], param: str) -> None:
    assert_error(await client.post("/v1/chat/completions", json=body), 400, param=param)


async def test_extra_fields_are_ignored(client: Any) -> None:
    r = await chat(client, max_tokens=2, some_future_field={"x": 1}, prompt_truncate_len=10, store=False)
    assert r.status_code == 200, r.text
    r = await complete(client, prompt="x", max_tokens=2, response_format={"type": "text"}, unknown=1)
    assert r.status_code == 200, r.text


async def test_wrong_content_type(client: Any) -> None:
    r = await client.post("/v1/completions", content=b'{"model":"tiny","prompt":"x"}', headers={"content-type": "text/plain"})
    assert_error(r, 400)
    r = await client.post("/v1/chat/completions", data={"model": "tiny"})
    assert_error(r, 400)


async def test_unknown_model_route_and_method(client: Any) -> None:
    assert_error(await complete(client, model="gpt-9", prompt="x"), 404, code="model_not_found", param="model")
    assert_error(await chat(client, model="gpt-9"), 404, code="model_not_found")
    assert_error(await client.get("/v1/models/gpt-9"), 404, code="model_not_found")
    assert_error(await client.get("/v1/nothing-here"), 404)
    assert_error(await client.get("/v1/completions"), 405)
    assert_error(await client.delete("/v1/models"), 405)


async def test_models_and_health(client: Any, loaded: Any) -> None:
    from conformance import schemas

    body = (await client.get("/v1/models")).json()
    assert schemas.validate("model.list", body) == []
    assert body["data"][0]["id"] == "tiny" and body["data"][0]["context_length"] == loaded.context_length
    one = (await client.get("/v1/models/tiny")).json()
    assert schemas.validate("model", one) == [] and one == body["data"][0]
    health = (await client.get("/health")).json()
    assert health["status"] == "ok" and "running" in health["engine"]
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/docs")).status_code == 200


async def test_api_key(make_config: Any) -> None:
    app = create_app(make_config("fireworks", api_key="sekrit-key"))
    async with client_for(app) as c:
        assert_error(await c.get("/v1/models"), 401, code="invalid_api_key")
        assert_error(await c.get("/v1/models", headers={"Authorization": "sekrit-key"}), 401, code="invalid_api_key")
        assert_error(await c.get("/v1/models", headers={"Authorization": "Basic sekrit-key"}), 401)
        r = await c.get("/v1/models", headers={"Authorization": "Bearer wrong"})
        err = assert_error(r, 401, code="invalid_api_key")
        assert "sekrit" not in r.text and "wrong" not in err["message"]
        ok = {"Authorization": "Bearer sekrit-key"}
        assert (await c.get("/v1/models", headers=ok)).status_code == 200
        r = await c.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 1}, headers=ok)
        assert r.status_code == 200
        assert (await c.get("/health")).status_code == 200


async def test_body_too_large(make_config: Any) -> None:
    app = create_app(make_config("openai", limits={"max_body_bytes": 2000}))
    async with client_for(app) as c:
        big = {"model": "tiny", "prompt": "x" * 5000}
        assert_error(await c.post("/v1/completions", json=big), 413)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"model": "tiny", "prompt": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        r = await c.post("/v1/completions", content=chunks(), headers={"content-type": "application/json"})
        assert_error(r, 413)
        ok = await c.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 1})
        assert ok.status_code == 200


class _FakeEngine:
    """Engine stand-in for failure paths only (the real engine is used everywhere else)."""

    context_length = 256
    model_name = "tiny"
    device = "cpu"
    dtype = "float32"

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[TokenEvent]:
        if self.mode == "overloaded":
            raise EngineOverloaded("queue full", retry_after=2.0)
        if self.mode == "crash":
            raise RuntimeError("boom")
        return self._fail_later()

    async def _fail_later(self) -> AsyncIterator[TokenEvent]:
        yield TokenEvent(100, -0.1, [], None)
        raise EngineFailure("forward pass failed")

    async def prompt_logprobs(self, prompt_ids: list[int], top_logprobs: int) -> list[Any]:
        return []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def test_engine_overloaded_is_429(make_config: Any) -> None:
    app = create_app(make_config("openai", engine=_FakeEngine("overloaded")))
    async with client_for(app) as c:
        r = await complete(c, prompt="x")
        assert_error(r, 429)
        assert r.headers["retry-after"] == "2"
        r = await chat(c, stream=True)
        assert_error(r, 429)


async def test_unexpected_exception_is_shaped_500(make_config: Any) -> None:
    app = create_app(make_config("openai", engine=_FakeEngine("crash")))
    async with client_for(app) as c:
        err = assert_error(await complete(c, prompt="x"), 500, type="server_error")
        assert "boom" not in err["message"]


async def test_error_after_stream_started(make_config: Any) -> None:
    app = create_app(make_config("fireworks", engine=_FakeEngine("fail_later")))
    async with client_for(app) as c:
        r = await complete(c, prompt="x", stream=True, max_tokens=5)
        assert r.status_code == 200
        payloads, done = parse_sse(r.text)
        assert done and "error" in payloads[-1]
        from conformance import schemas

        assert schemas.validate("error", payloads[-1]) == []


async def test_a_client_gone_before_its_body_arrived_is_no_server_error(
    apps: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A keep-alive connection closed under a new request: the body never arrives. The server answers
    (to nobody) without logging an error or a traceback, and serves the next request."""
    app = apps["fireworks"]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/completions", "raw_path": b"/v1/completions", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    incoming = [{"type": "http.request", "body": b'{"model": "ti', "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with caplog.at_level("DEBUG"):
        await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    async with client_for(app) as c:
        r = await c.post("/v1/completions", json={"model": "tiny", "prompt": "The fox", "max_tokens": 2})
        assert r.status_code == 200
