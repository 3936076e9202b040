"""Unit tests for the check functions: each raises for its requirement on a crafted bad input, passes on good."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance.checks import (
    common,
    determinism,
    echo,
    logprobs,
    max_tokens,
    models,
    n,
    params,
    stop,
    stream,
    usage,
)
from conformance.results import CheckFailure

ERR = {"error": {"message": "bad", "type": "invalid_request_error", "param": "stop", "code": None}}


@dataclass
class R:
    status: int
    json: Any = None
    text: str = ""


@dataclass
class S:
    status: int = 200
    content_type: str = "text/event-stream"
    chunks: list[dict[str, Any]] = field(default_factory=list)
    done: bool = True
    framing_errors: list[str] = field(default_factory=list)
    after_done: list[str] = field(default_factory=list)
    error_body: Any = None
    events: list[str] = field(default_factory=list)
    text: str = ""


def chunk(text: str, finish: str | None = None, usage: Any = None, index: int = 0, cid: str = "c1") -> dict[str, Any]:
    return {"id": cid, "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": index, "text": text, "finish_reason": finish, "logprobs": None}], "usage": usage}


U = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
GOOD = [chunk("a"), chunk("b", "stop", U)]

CASES: list[tuple[str, Callable[..., None], tuple[Any, ...], tuple[Any, ...]]] = [
    # (name, check, good args, bad args) -- the requirement id is prepended
    ("ends", stop.text_ends_with_stop, ("abc.", "."), ("abc", ".")),
    ("excludes", stop.text_excludes_stop, ("abc", "."), ("ab.c", ".")),
    ("cut", stop.truncated_at, ("ab", "ab", "abcd", ["c"]), ("abc", "ab", "abcd", ["c"])),
    ("unchanged", stop.unchanged_by_stop, ("ab", "ab", ["zz"]), ("a", "ab", ["zz"])),
    ("finish", stop.finish_reason_is, ("stop", "stop"), ("length", "stop")),
    ("stop_usage", stop.stop_usage, (U, {**U, "completion_tokens": 5}), ({**U, "prompt_tokens": 4}, U)),
    ("at_most", max_tokens.completion_tokens_at_most, (U, 2), (U, 1)),
    ("length", max_tokens.length_means_max_tokens, ("length", U, 2), ("length", U, 3)),
    ("clamp", max_tokens.clamp_arithmetic, (U, "length", 5), (U, "length", 9)),
    ("message", max_tokens.message_mentions_number, (R(400, {"error": {"message": "context is 4,096 tokens"}}), 4096),
     (R(400, {"error": {"message": "too long"}}), 4096)),
    ("sse", stream.content_type_is_sse, (S(),), (S(content_type="application/json"),)),
    ("framing", stream.framing_clean, (S(chunks=GOOD),), (S(chunks=GOOD, framing_errors=["line 2: junk"]),)),
    ("done", stream.ends_with_done, (S(),), (S(done=False),)),
    ("after_done", stream.ends_with_done, (S(),), (S(after_done=["x"]),)),
    ("ids", stream.consistent_ids, (GOOD,), ([chunk("a"), chunk("b", "stop", cid="c2")],)),
    ("object", stream.chunk_objects, (GOOD, "text_completion"), (GOOD, "chat.completion.chunk")),
    ("one_finish", stream.one_finish_reason_per_choice, (GOOD,), ([chunk("a", "stop"), chunk("b", "stop")],)),
    ("role", stream.chat_role_first,
     ([{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}],),
     ([{"choices": [{"index": 0, "delta": {"content": "x"}}]}],)),
    ("same", stream.same_as_non_stream, ("ab", "stop", "ab", "stop"), ("ab", "stop", "abc", "stop")),
    ("not_stream", stream.error_not_stream, (S(status=400),), (S(status=200),)),
    ("present", usage.usage_present, (U,), ({"prompt_tokens": 1},)),
    ("arith", usage.usage_arithmetic, (U,), ({**U, "total_tokens": 6},)),
    ("final", usage.usage_on_final_chunk, (GOOD,), ([chunk("a", usage=U), chunk("b", "stop")],)),
    ("null_elsewhere", usage.usage_null_elsewhere, (GOOD,), ([chunk("a", usage=U), chunk("b", "stop", U)],)),
    ("include", usage.include_usage_chunk, ([chunk("a", "stop"), {"choices": [], "usage": U}],), (GOOD,)),
    ("absent", usage.no_usage_in_stream, ([chunk("a", "stop")],), (GOOD,)),
    ("equal_usage", usage.usage_equal, (U, dict(U)), (U, {**U, "completion_tokens": 1, "total_tokens": 4})),
    ("stable", usage.same_prompt_tokens, ([U, U],), ([U, {**U, "prompt_tokens": 9}],)),
    ("accepted", params.accepted, (R(200, {"choices": []}),), (R(400, ERR),)),
    ("rejected", params.rejected_param, (R(400, ERR), "stop"), (R(200, {}), "stop")),
    ("rejected_param_name", params.rejected_param, (R(400, ERR), "stop"), (R(400, ERR), "logit_bias")),
    ("repeat", params.single_token_repeated, ("abab", 2), ("abac", 2)),
    ("absent_token", params.token_absent, (["a", "b"], "c"), (["a", "c"], "c")),
    ("count", n.choice_count, ({"choices": [{}, {}]}, 2), ({"choices": [{}]}, 2)),
    ("indexes", n.indexes, ([{"index": 0}, {"index": 1}], 2), ([{"index": 0}, {"index": 0}], 2)),
    ("stream_indexes", n.stream_indexes, ([chunk("a", "stop", index=0), chunk("b", "stop", index=1)], 2),
     ([chunk("a", "stop", index=0), chunk("b", "stop", index=2)], 2)),
    ("lp_shape", logprobs.completions_shape,
     ({"tokens": ["a"], "token_logprobs": [-1.0], "top_logprobs": [{"a": -1.0}], "text_offset": [0]}, 1),
     ({"tokens": ["a", "b"], "token_logprobs": [-1.0], "top_logprobs": [None], "text_offset": [0]}, 1)),
    ("join", logprobs.tokens_join, (["a", "b"], "ab", [0, 1]), (["a", "b"], "abc")),
    ("offsets", logprobs.tokens_join, (["a", "b"], "ab", [5, 6], 5), (["a", "b"], "ab", [0, 2])),
    ("nonpos", logprobs.values_nonpositive, ([-1.0, 0],), ([-1.0, 0.5],)),
    ("chat_lp", logprobs.chat_shape,
     ({"content": [{"token": "a", "logprob": -1, "bytes": [97], "top_logprobs": []}]}, 2), ({"content": []}, 2)),
    ("echo", echo.echo_prefix, ("P c", "P", " c"), ("c", "P", " c")),
    ("first_null", echo.first_logprob_null, ({"token_logprobs": [None, -1]},), ({"token_logprobs": [-1]},)),
    ("lists", models.lists_model, ({"data": [{"id": "m"}]}, "m"), ({"data": [{"id": "x"}]}, "m")),
    ("model", models.model_object, ({"id": "m", "object": "model"}, "m"), ({"id": "x", "object": "model"}, "m")),
    ("ctx", models.context_length_reported, ({"context_length": 2048},), ({"id": "m"},)),
    ("same_out", determinism.identical_outputs, ("a", "a"), ("a", "b")),
    ("status_ok", common.status_ok, (R(200, {}),), (R(500, None, "oops"),)),
    ("error", common.is_openai_error, (R(400, ERR),), (R(400, {"detail": "bad"}),)),
    ("error_status", common.is_openai_error, (R(400, ERR),), (R(200, ERR),)),
    ("equal", common.equal, ("x", 1, 1), ("x", 1, 2)),
    ("schema", common.valid_against, ("error", ERR), ("error", {"detail": "x"})),
]


@pytest.mark.parametrize(("name", "check", "good", "bad"), CASES, ids=[c[0] for c in CASES])
def test_check_passes_good_and_fails_bad(name: str, check: Callable[..., None], good: tuple, bad: tuple) -> None:
    req = f"area.{name}"
    check(req, *good)
    with pytest.raises(CheckFailure) as info:
        check(req, *bad)
    assert info.value.requirement == req
    assert info.value.message


def test_expected_stopped_text() -> None:
    assert stop.expected_stopped_text("hello world", ["o w"], include=True) == ("hello w", "o w")
    assert stop.expected_stopped_text("hello world", ["o w"], include=False) == ("hell", "o w")
    # earliest completion wins, absent stops ignored, repeated stops cut at the first occurrence
    assert stop.expected_stopped_text("abcabc", ["zz", "c", "ab"], include=False) == ("", "ab")
    assert stop.expected_stopped_text("xbcbc", ["bc"], include=True) == ("xbc", "bc")
    assert stop.expected_stopped_text("abc", ["zz"], include=True) is None


def test_is_openai_error_param_and_code() -> None:
    common.is_openai_error("e.x", R(400, ERR), 400, param="stop", error_type="invalid_request_error")
    with pytest.raises(CheckFailure, match="error.code"):
        common.is_openai_error("e.x", R(400, ERR), 400, code="context_length_exceeded")
