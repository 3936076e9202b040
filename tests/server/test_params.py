"""Options the seed lists as unsupported, driven by the params.* axes (rejected / supported)."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import assert_error, chat, complete

pytestmark = pytest.mark.anyio

FUNCTIONS = [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}]

NON_DEFAULT: list[tuple[str, str, Any]] = [
    ("completions", "presence_penalty", 0.5),
    ("completions", "frequency_penalty", -0.5),
    ("completions", "logit_bias", {"5": 10}),
    ("completions", "best_of", 2),
    ("chat", "presence_penalty", 1.0),
    ("chat", "frequency_penalty", 1.0),
    ("chat", "logit_bias", {"7": -100}),
    ("chat", "functions", FUNCTIONS),
]
DEFAULTS: list[tuple[str, Any]] = [
    ("presence_penalty", 0),
    ("presence_penalty", None),
    ("frequency_penalty", 0.0),
    ("logit_bias", {}),
    ("logit_bias", None),
    ("best_of", 1),
    ("best_of", None),
    ("functions", []),
    ("functions", None),
]


async def _send(client: Any, api: str, **kw: Any) -> Any:
    kw.setdefault("max_tokens", 4)
    if api == "completions":
        kw.setdefault("prompt", "A crow")
        return await complete(client, **kw)
    return await chat(client, **kw)


@pytest.mark.parametrize(("api", "name", "value"), NON_DEFAULT)
async def test_non_default_value(client: Any, profile: str, api: str, name: str, value: Any) -> None:
    r = await _send(client, api, **{name: value})
    if profile == "fireworks":
        err = assert_error(r, 400, param=name, type="invalid_request_error")
        assert "not supported" in err["message"]
    else:
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(("name", "value"), DEFAULTS)
async def test_default_value_accepted(client: Any, name: str, value: Any) -> None:
    api = "chat" if name == "functions" else "completions"
    r = await _send(client, api, **{name: value})
    assert r.status_code == 200, r.text


async def test_logit_bias_supported_steers_sampling(oa: Any) -> None:
    r = await complete(oa, prompt="A crow", max_tokens=3, temperature=0, logprobs=0, logit_bias={"100": 100},
                       ignore_eos=True)
    tokens = r.json()["choices"][0]["logprobs"]["tokens"]
    assert len(tokens) == 3 and len(set(tokens)) == 1
    assert_error(await complete(oa, prompt="x", logit_bias={"5": 101}), 400, param="logit_bias")
    assert_error(await complete(oa, prompt="x", logit_bias={"99999999": 1}), 400, param="logit_bias")
    assert_error(await complete(oa, prompt="x", logit_bias={"abc": 1}), 400, param="logit_bias")


async def test_best_of_supported(oa: Any) -> None:
    r = await complete(oa, prompt="A crow", max_tokens=5, best_of=3, n=2, seed=7)
    body = r.json()
    assert r.status_code == 200 and [c["index"] for c in body["choices"]] == [0, 1]
    assert_error(await complete(oa, prompt="x", best_of=1, n=2), 400, param="best_of")


async def test_penalty_range_checked(oa: Any) -> None:
    assert_error(await complete(oa, prompt="x", presence_penalty=2.5), 400, param="presence_penalty")
