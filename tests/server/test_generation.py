"""Semantics of /v1/completions and /v1/chat/completions per profile: stops, max_tokens, n, echo,
logprobs, seed, stream/non-stream equality."""

from __future__ import annotations

from typing import Any

import pytest

from conformance import schemas

from .helpers import assert_error, chat, complete, stream, stream_text

pytestmark = pytest.mark.anyio

PROMPT = "The fox saw the grapes and"


async def greedy(client: Any, prompt: str = PROMPT, max_tokens: int = 24, **kw: Any) -> dict[str, Any]:
    r = await complete(client, prompt=prompt, max_tokens=max_tokens, temperature=0, **kw)
    assert r.status_code == 200, r.text
    return r.json()


async def test_completion_shape(client: Any, profile: str) -> None:
    body = await greedy(client)
    assert schemas.validate("completion", body) == []
    assert list(body) == ["id", "choices", "created", "model", "system_fingerprint", "object", "usage"]
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion" and body["model"] == "tiny"
    assert list(body["choices"][0]) == ["finish_reason", "index", "logprobs", "text"]
    assert schemas.usage_errors(body["usage"]) == []
    again = await greedy(client)
    assert again["system_fingerprint"] == body["system_fingerprint"]
    assert again["choices"][0]["text"] == body["choices"][0]["text"]


async def test_completion_default_max_tokens_is_16(client: Any) -> None:
    r = await complete(client, prompt=PROMPT, temperature=0, ignore_eos=True)
    body = r.json()
    assert body["usage"]["completion_tokens"] == 16 and body["choices"][0]["finish_reason"] == "length"


async def test_chat_shape(client: Any) -> None:
    r = await chat(client, max_tokens=12, temperature=0)
    body = r.json()
    assert r.status_code == 200 and schemas.validate("chat.completion", body) == []
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant" and isinstance(msg["content"], str)


async def test_chat_default_max_tokens_fills_context(fw: Any, loaded: Any) -> None:
    content = _long_prompt(loaded, loaded.context_length - 40)  # leave a little room: a short test
    r = await chat(fw, temperature=0, ignore_eos=True, messages=[{"role": "user", "content": content}])
    body = r.json()
    usage = body["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] == loaded.context_length
    assert body["choices"][0]["finish_reason"] == "length"


async def test_max_completion_tokens_supersedes_max_tokens(client: Any) -> None:
    r = await chat(client, temperature=0, max_tokens=40, max_completion_tokens=3, ignore_eos=True)
    assert r.json()["usage"]["completion_tokens"] == 3


# ---------------------------------------------------------------- stop


def _expected(text: str, stop: str, profile: str) -> str:
    pos = text.find(stop)
    assert pos >= 0
    return text[: pos + len(stop)] if profile == "fireworks" else text[:pos]


async def test_stop_from_greedy_output(client: Any, profile: str) -> None:
    base = (await greedy(client, max_tokens=30, ignore_eos=True))["choices"][0]["text"]
    stop = base[8:12]
    r = await greedy(client, max_tokens=30, stop=[stop, "\u2603never"], ignore_eos=True)
    choice = r["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["text"] == _expected(base, stop, profile)
    _, chunks = await stream(client, "/v1/completions", prompt=PROMPT, max_tokens=30, temperature=0, stop=stop,
                             ignore_eos=True)
    assert stream_text(chunks) == choice["text"]


async def test_stop_ending_inside_a_token(client: Any, profile: str) -> None:
    base = await greedy(client, max_tokens=30, logprobs=0, ignore_eos=True)
    text = base["choices"][0]["text"]
    lp = base["choices"][0]["logprobs"]
    stop = None
    for tok, off in zip(lp["tokens"], lp["text_offset"], strict=True):
        if len(tok) >= 3 and off >= 2:
            candidate = text[off - 2 : off + 1]  # ends one character into a multi-character token
            if text.find(candidate) == off - 2:
                stop = candidate
                break
    assert stop is not None, lp["tokens"]
    r = await greedy(client, max_tokens=30, stop=stop, ignore_eos=True)
    assert r["choices"][0]["text"] == _expected(text, stop, profile)
    _, chunks = await stream(client, "/v1/completions", prompt=PROMPT, max_tokens=30, temperature=0, stop=stop,
                             ignore_eos=True)
    assert stream_text(chunks) == r["choices"][0]["text"]


async def test_stop_only_in_prompt_is_ignored(client: Any) -> None:
    base = (await greedy(client, max_tokens=20, ignore_eos=True))["choices"][0]
    stop = "grapes and"
    assert stop in PROMPT and stop not in base["text"]
    r = (await greedy(client, max_tokens=20, stop=stop, ignore_eos=True))["choices"][0]
    assert r["text"] == base["text"] and r["finish_reason"] == "length"


async def test_chat_stop(client: Any, profile: str) -> None:
    base = (await chat(client, max_tokens=30, temperature=0, ignore_eos=True)).json()["choices"][0]["message"]["content"]
    stop = base[5:9]
    r = (await chat(client, max_tokens=30, temperature=0, stop=stop, ignore_eos=True)).json()["choices"][0]
    assert r["finish_reason"] == "stop" and r["message"]["content"] == _expected(base, stop, profile)


async def test_five_stops_rejected(client: Any) -> None:
    r = await complete(client, prompt="x", stop=["a", "b", "c", "d", "e"])
    assert_error(r, 400, param="stop", code="array_above_max_length")
    r = await chat(client, stop=["a", "b", "c", "d", "e"], stream=True)
    assert_error(r, 400, param="stop")


# ---------------------------------------------------------------- context window


def _long_prompt(loaded: Any, tokens: int) -> str:
    tok = loaded.tokenizer
    words = " the fox" * tokens
    ids = tok.encode(words, add_special_tokens=True)[:tokens]
    text = tok.decode(ids, skip_special_tokens=True)
    return text


async def test_overflow_per_profile(client: Any, profile: str, loaded: Any) -> None:
    ctx = loaded.context_length
    prompt = _long_prompt(loaded, 200)
    r = await complete(client, prompt=prompt, max_tokens=100, temperature=0, ignore_eos=True)
    if profile == "fireworks":  # truncate: max_tokens clamped to the room left
        body = r.json()
        assert r.status_code == 200, r.text
        p = body["usage"]["prompt_tokens"]
        assert body["usage"]["completion_tokens"] == ctx - p and body["choices"][0]["finish_reason"] == "length"
    else:
        err = assert_error(r, 400, param="prompt", code="context_length_exceeded", type="invalid_request_error")
        assert err["message"].startswith(f"This model's maximum context length is {ctx} tokens. However, you requested ")
    r = await chat(client, messages=[{"role": "user", "content": prompt}], max_tokens=100, temperature=0)
    if profile == "fireworks":
        assert r.status_code == 200, r.text
    else:
        err = assert_error(r, 400, param="messages", code="context_length_exceeded")
        p = err["message"].split("(")[1].split(" ")[0]
        assert err["message"] == (
            f"This model's maximum context length is {ctx} tokens. However, you requested {int(p) + 100} tokens "
            f"({p} in the messages, 100 in the completion). Please reduce the length of the messages or completion."
        )


async def test_context_length_exceeded_behavior_param(fw: Any, oa: Any, loaded: Any) -> None:
    prompt = _long_prompt(loaded, 200)
    r = await complete(fw, prompt=prompt, max_tokens=100, context_length_exceeded_behavior="error")
    assert_error(r, 400, param="prompt", code="context_length_exceeded")
    r = await complete(fw, prompt=prompt, max_tokens=2, context_length_exceeded_behavior="bogus")
    assert_error(r, 400, param="context_length_exceeded_behavior")
    # the openai profile ignores the parameter: its default (error) applies
    r = await complete(oa, prompt=prompt, max_tokens=100, context_length_exceeded_behavior="truncate")
    assert_error(r, 400, code="context_length_exceeded")
    r = await complete(oa, prompt=prompt, max_tokens=2, context_length_exceeded_behavior="bogus")
    assert r.status_code == 200


async def test_prompt_filling_context_is_rejected(client: Any, loaded: Any) -> None:
    prompt = _long_prompt(loaded, loaded.context_length + 20)
    r = await complete(client, prompt=prompt, max_tokens=1)
    assert_error(r, 400, param="prompt", code="context_length_exceeded")
    r = await chat(client, messages=[{"role": "user", "content": prompt}], stream=True)
    assert_error(r, 400, param="messages", code="context_length_exceeded")


async def test_max_tokens_below_one(client: Any) -> None:
    assert_error(await complete(client, prompt="x", max_tokens=0), 400, param="max_tokens")
    assert_error(await chat(client, max_tokens=-3), 400, param="max_tokens")
    assert_error(await chat(client, max_completion_tokens=0), 400, param="max_completion_tokens")


# ---------------------------------------------------------------- n, prompts, echo, logprobs, seed


async def test_n_and_prompt_lists(client: Any) -> None:
    solo = [(await greedy(client, prompt=p, max_tokens=8))["choices"][0]["text"] for p in ("A lion", "The crow")]
    r = await complete(client, prompt=["A lion", "The crow"], n=2, max_tokens=8, temperature=0)
    body = r.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert [c["text"] for c in body["choices"]] == [solo[0], solo[0], solo[1], solo[1]]
    assert_error(await complete(client, prompt="x", n=129), 400, param="n")
    r = await chat(client, n=3, max_tokens=5)
    assert sorted(c["index"] for c in r.json()["choices"]) == [0, 1, 2]


async def test_echo_with_logprobs(client: Any) -> None:
    body = await greedy(client, max_tokens=6, echo=True, logprobs=2)
    choice = body["choices"][0]
    assert choice["text"].startswith(PROMPT)
    lp = choice["logprobs"]
    n_tokens = body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"])
    assert len(lp["tokens"]) in (n_tokens, n_tokens - 1)  # an EOS is not a token of the text
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert all(1 <= len(t) <= 3 for t in lp["top_logprobs"][1:])
    assert lp["text_offset"] == sorted(lp["text_offset"])
    assert schemas.validate("completion", body) == []


async def test_completion_logprobs_match_text(client: Any) -> None:
    body = await greedy(client, max_tokens=10, logprobs=3, ignore_eos=True)
    choice = body["choices"][0]
    lp = choice["logprobs"]
    assert "".join(lp["tokens"]) == choice["text"]
    assert len(lp["tokens"]) == body["usage"]["completion_tokens"]
    assert lp["text_offset"][0] == 0
    for token, top in zip(lp["tokens"], lp["top_logprobs"], strict=True):
        assert token in top and len(top) <= 4


async def test_chat_logprobs(client: Any) -> None:
    r = await chat(client, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3, ignore_eos=True)
    choice = r.json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in content) == choice["message"]["content"]
    for e in content:
        assert list(e) == ["token", "logprob", "bytes", "top_logprobs"]
        assert bytes(e["bytes"]).decode() == e["token"] and len(e["top_logprobs"]) == 3
    assert_error(await chat(client, top_logprobs=2), 400, param="top_logprobs")
    assert_error(await chat(client, logprobs=True, top_logprobs=21), 400, param="top_logprobs")
    assert_error(await complete(client, prompt="x", logprobs=6), 400, param="logprobs")


async def test_seed_reproducible(client: Any) -> None:
    kw: dict[str, Any] = {"prompt": PROMPT, "max_tokens": 12, "temperature": 1.0, "seed": 1234, "ignore_eos": True}
    a = (await complete(client, **kw)).json()["choices"][0]["text"]
    b = (await complete(client, **kw)).json()["choices"][0]["text"]
    assert a == b
    assert_error(await complete(client, prompt="x", seed=2**63), 400, param="seed")
    assert_error(await chat(client, seed=-(2**63) - 1), 400, param="seed")


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
async def test_stream_equals_non_stream(client: Any, path: str) -> None:
    kw: dict[str, Any] = {"max_tokens": 20, "temperature": 0, "n": 2}
    if path == "/v1/completions":
        kw["prompt"] = PROMPT
        full = (await complete(client, **kw)).json()
    else:
        full = (await chat(client, **kw)).json()
    kw["stream_options"] = {"include_usage": True}
    _, chunks = await stream(client, path, **kw)
    for i in range(2):
        choice = full["choices"][i]
        expect = choice.get("text", choice.get("message", {}).get("content"))
        assert stream_text(chunks, i) == expect
        finishes = [c["finish_reason"] for ch in chunks for c in ch["choices"] if c["index"] == i and c["finish_reason"]]
        assert finishes == [choice["finish_reason"]]
    usages = [c["usage"] for c in chunks if c.get("usage")]
    assert usages == [full["usage"]]
