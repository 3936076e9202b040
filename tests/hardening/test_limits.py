"""Request limits: each answered with a clear OpenAI-shaped 4xx naming the parameter; all configurable.

Limits (reference_server.config.Limits, CLI flags of the same names): body bytes (413), messages,
n, stop count and length, prompts per request, prompt tokens, and completion tokens per request
(prompts x n x max_tokens).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from reference_server.app import create_app
from reference_server.cli import build_parser, limits_from_args
from reference_server.config import Limits

from .conftest import MODEL, assert_openai_error, client_for

pytestmark = pytest.mark.anyio

SMALL = {
    "max_body_bytes": 2048,
    "max_messages": 3,
    "max_n": 3,
    "max_stop_count": 2,
    "max_stop_length": 5,
    "max_prompts": 2,
    "max_prompt_tokens": 20,
    "max_request_tokens": 12,
}


@pytest.fixture
async def small(make_config: Any) -> Any:
    async with client_for(create_app(make_config("openai", limits=SMALL))) as c:
        yield c


def cmpl(**kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": "The fox", "max_tokens": 2, "temperature": 0, **kw}


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0, **kw}


async def test_within_every_limit_is_ok(small: httpx.AsyncClient) -> None:
    r = await small.post("/v1/completions", json=cmpl(n=3, max_tokens=4, stop=["abcde", "x"]))
    assert r.status_code == 200, r.text
    r = await small.post("/v1/chat/completions", json=chat(messages=[{"role": "user", "content": "a"}] * 3))
    assert r.status_code == 200, r.text


async def test_body_size_413(small: httpx.AsyncClient) -> None:
    r = await small.post("/v1/completions", json=cmpl(prompt="a " * 2000))
    err = assert_openai_error(r, 413)
    assert err["code"] == "request_too_large" and "2048" in err["message"]


async def test_message_count(small: httpx.AsyncClient) -> None:
    r = await small.post("/v1/chat/completions", json=chat(messages=[{"role": "user", "content": "a"}] * 4))
    err = assert_openai_error(r, 400)
    assert err["param"] == "messages" and "3" in err["message"]


@pytest.mark.parametrize("path,body", [("/v1/completions", cmpl(n=4)), ("/v1/chat/completions", chat(n=4))])
async def test_n(small: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    err = assert_openai_error(await small.post(path, json=body), 400)
    assert err["param"] == "n"


@pytest.mark.parametrize("path,make", [("/v1/completions", cmpl), ("/v1/chat/completions", chat)])
async def test_stop_count_and_length(small: httpx.AsyncClient, path: str, make: Any) -> None:
    err = assert_openai_error(await small.post(path, json=make(stop=["a", "b", "c"])), 400)
    assert err["param"] == "stop" and err["code"] == "array_above_max_length"
    err = assert_openai_error(await small.post(path, json=make(stop="abcdef")), 400)
    assert err["param"] == "stop" and "5 characters" in err["message"]


async def test_prompts_per_request(small: httpx.AsyncClient) -> None:
    err = assert_openai_error(await small.post("/v1/completions", json=cmpl(prompt=["a", "b", "c"])), 400)
    assert err["param"] == "prompt"


@pytest.mark.parametrize("path,body,param", [
    ("/v1/completions", cmpl(prompt="the fox and the crow " * 10), "prompt"),
    ("/v1/chat/completions", chat(messages=[{"role": "user", "content": "the fox and the crow " * 10}]), "messages"),
])
async def test_prompt_tokens(small: httpx.AsyncClient, path: str, body: dict[str, Any], param: str) -> None:
    err = assert_openai_error(await small.post(path, json=body), 400)
    assert err["param"] == param and err["code"] == "context_length_exceeded"
    assert "at most 20 prompt tokens" in err["message"]


@pytest.mark.parametrize("path,body,param", [
    ("/v1/completions", cmpl(n=3, max_tokens=5), "n"),  # 15 > 12
    ("/v1/completions", cmpl(max_tokens=13), "max_tokens"),
    ("/v1/completions", cmpl(prompt=["a", "b"], max_tokens=7), "prompt"),  # 14 > 12
    ("/v1/completions", cmpl(max_tokens=None), "max_tokens"),  # the default 16
    ("/v1/chat/completions", chat(n=2, max_tokens=7), "n"),
    ("/v1/chat/completions", chat(max_completion_tokens=13, max_tokens=None), "max_completion_tokens"),
    ("/v1/chat/completions", chat(max_tokens=None), "max_tokens"),  # no max_tokens: the whole room
])
async def test_n_times_max_tokens(small: httpx.AsyncClient, path: str, body: dict[str, Any], param: str) -> None:
    body = {k: v for k, v in body.items() if v is not None}
    err = assert_openai_error(await small.post(path, json=body), 400)
    assert err["param"] == param and err["code"] == "request_tokens_above_max", err
    assert "at most 12" in err["message"]


async def test_best_of_counts_toward_the_token_budget(make_config: Any) -> None:
    cfg = make_config("openai", limits={"max_request_tokens": 12})
    if cfg.profile.param_mode("best_of") != "supported":
        pytest.skip("best_of is not supported by the openai profile")
    async with client_for(create_app(cfg)) as c:
        err = assert_openai_error(await c.post("/v1/completions", json=cmpl(best_of=3, n=1, max_tokens=5)), 400)
    assert err["param"] == "best_of"


async def test_default_limits_leave_ordinary_requests_alone(make_config: Any) -> None:
    async with client_for(create_app(make_config("openai"))) as c:
        r = await c.post("/v1/completions", json=cmpl(n=8, max_tokens=4))
        assert r.status_code == 200, r.text


def test_cli_flags_set_every_limit() -> None:
    args = build_parser().parse_args([
        "--max-body-bytes", "10", "--max-messages", "2", "--max-n", "3", "--max-stop-count", "1",
        "--max-stop-length", "7", "--max-prompts", "5", "--max-prompt-tokens", "50", "--max-request-tokens", "99",
        "--max-queue", "4",
    ])
    assert limits_from_args(args) == Limits(10, 2, 3, 1, 7, 5, 50, 99)
    assert args.max_queue == 4
    assert limits_from_args(build_parser().parse_args([])) == Limits()
    assert limits_from_args(build_parser().parse_args(["--max-request-tokens", "0"])).max_request_tokens is None
