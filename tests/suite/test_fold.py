"""Folding streamed chunks into the equivalent non-streamed response."""

from __future__ import annotations

from conformance.fold import fold_chat_stream, fold_completion_stream

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_fold_completion_two_choices_logprobs_and_usage():
    chunks = [
        {"id": "c1", "created": 7, "model": "m", "choices": [
            {"index": 1, "text": "Hel", "finish_reason": None, "logprobs": {"tokens": ["Hel"], "token_logprobs": [-1.0]}},
            {"index": 0, "text": "a", "finish_reason": None}]},
        {"id": "c1", "choices": [
            {"index": 1, "text": "lo", "finish_reason": "stop", "logprobs": {"tokens": ["lo"], "token_logprobs": [-0.5]}},
            {"index": 0, "text": "b", "finish_reason": "length"}]},
        {"id": "c1", "choices": [], "usage": USAGE},
        "garbage",  # tolerated
    ]
    folded = fold_completion_stream(chunks)  # type: ignore[arg-type]
    assert folded["id"] == "c1" and folded["created"] == 7 and folded["object"] == "text_completion"
    assert [c["text"] for c in folded["choices"]] == ["ab", "Hello"]
    assert [c["finish_reason"] for c in folded["choices"]] == ["length", "stop"]
    assert folded["choices"][1]["logprobs"]["tokens"] == ["Hel", "lo"]
    assert folded["choices"][1]["logprobs"]["token_logprobs"] == [-1.0, -0.5]
    assert folded["choices"][0]["logprobs"] is None
    assert folded["usage"] == USAGE


def test_fold_chat_content_role_tools_usage_on_final_chunk():
    chunks = [
        {"id": "x", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
        {"id": "x", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None,
                                 "logprobs": {"content": [{"token": "Hi", "logprob": -0.1}]}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": None,
                                 "logprobs": {"content": [{"token": " there", "logprob": -0.2}]}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE},
    ]
    folded = fold_chat_stream(chunks)
    choice = folded["choices"][0]
    assert folded["object"] == "chat.completion"
    assert choice["message"] == {"role": "assistant", "content": "Hi there"}
    assert choice["finish_reason"] == "stop"
    assert [t["token"] for t in choice["logprobs"]["content"]] == ["Hi", " there"]
    assert folded["usage"] == USAGE


def test_fold_chat_tool_calls():
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
                      "finish_reason": "tool_calls"}]},
    ]
    message = fold_chat_stream(chunks)["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "call_1", "type": "function",
                                      "function": {"name": "get", "arguments": '{"a":1}'}}]


def test_fold_empty():
    assert fold_chat_stream([])["choices"] == [] and fold_completion_stream([])["usage"] is None
