"""Fold streamed chunks into the equivalent non-streamed response, to compare the two.

    folded = fold_completion_stream(stream.chunks)
    folded["choices"][0]["text"]       # concatenation of every chunk's text for index 0

Rules (both endpoints): choices are grouped by `index` and sorted; the last non-null
`finish_reason` of an index wins; `usage` is the last non-null usage seen on any chunk
(Fireworks puts it on the final chunk, OpenAI on an extra chunk with empty choices);
`id`, `created`, `model`, `system_fingerprint` come from the first chunk that has them.
Malformed chunks (non-dicts, non-list choices, non-string text) are skipped, never raised on.
"""

from __future__ import annotations

from typing import Any

_TOP_KEYS = ("id", "created", "model", "system_fingerprint")
_COMPLETION_LOGPROB_KEYS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


def _header(chunks: list[Any], obj: str) -> dict[str, Any]:
    out: dict[str, Any] = {"object": obj}
    for key in _TOP_KEYS:
        for chunk in chunks:
            if isinstance(chunk, dict) and chunk.get(key) is not None:
                out[key] = chunk[key]
                break
    return out


def _choices(chunk: Any) -> list[dict[str, Any]]:
    if not isinstance(chunk, dict):
        return []
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return []
    return [c for c in choices if isinstance(c, dict) and isinstance(c.get("index", 0), int)]


def _usage(chunks: list[Any]) -> Any:
    usage = None
    for chunk in chunks:
        if isinstance(chunk, dict) and chunk.get("usage") is not None:
            usage = chunk["usage"]
    return usage


def fold_completion_stream(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold /v1/completions stream chunks into a `text_completion` object."""
    out = _header(chunks, "text_completion")
    by_index: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in _choices(chunk):
            index = choice.get("index", 0)
            slot = by_index.setdefault(index, {"index": index, "text": "", "finish_reason": None, "logprobs": None})
            text = choice.get("text")
            if isinstance(text, str):
                slot["text"] += text
            if choice.get("finish_reason") is not None:
                slot["finish_reason"] = choice["finish_reason"]
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict):
                merged = slot["logprobs"] or {key: [] for key in _COMPLETION_LOGPROB_KEYS}
                for key in _COMPLETION_LOGPROB_KEYS:
                    values = logprobs.get(key)
                    if isinstance(values, list):
                        merged[key].extend(values)
                slot["logprobs"] = merged
    out["choices"] = [by_index[i] for i in sorted(by_index)]
    out["usage"] = _usage(chunks)
    return out


def fold_chat_stream(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold /v1/chat/completions stream chunks into a `chat.completion` object."""
    out = _header(chunks, "chat.completion")
    by_index: dict[int, dict[str, Any]] = {}
    contents: dict[int, list[str]] = {}
    tools: dict[int, dict[int, dict[str, Any]]] = {}
    for chunk in chunks:
        for choice in _choices(chunk):
            index = choice.get("index", 0)
            slot = by_index.setdefault(
                index,
                {"index": index, "message": {"role": None, "content": None}, "finish_reason": None, "logprobs": None},
            )
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if isinstance(delta.get("role"), str) and slot["message"]["role"] is None:
                    slot["message"]["role"] = delta["role"]
                if isinstance(delta.get("content"), str):
                    contents.setdefault(index, []).append(delta["content"])
                for call in delta.get("tool_calls") or []:
                    if not isinstance(call, dict):
                        continue
                    call_index = call.get("index", 0) if isinstance(call.get("index", 0), int) else 0
                    folded = tools.setdefault(index, {}).setdefault(
                        call_index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                    )
                    if call.get("id"):
                        folded["id"] = call["id"]
                    if call.get("type"):
                        folded["type"] = call["type"]
                    function = call.get("function")
                    if isinstance(function, dict):
                        if isinstance(function.get("name"), str):
                            folded["function"]["name"] += function["name"]
                        if isinstance(function.get("arguments"), str):
                            folded["function"]["arguments"] += function["arguments"]
            if choice.get("finish_reason") is not None:
                slot["finish_reason"] = choice["finish_reason"]
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict):
                merged = slot["logprobs"] or {"content": []}
                for key in ("content", "refusal"):
                    values = logprobs.get(key)
                    if isinstance(values, list):
                        merged.setdefault(key, []).extend(values)
                slot["logprobs"] = merged
    for index, slot in by_index.items():
        if index in contents:
            slot["message"]["content"] = "".join(contents[index])
        elif index not in tools:
            slot["message"]["content"] = ""
        if index in tools:
            slot["message"]["tool_calls"] = [tools[index][i] for i in sorted(tools[index])]
        if slot["message"]["role"] is None:
            slot["message"]["role"] = "assistant"
    out["choices"] = [by_index[i] for i in sorted(by_index)]
    out["usage"] = _usage(chunks)
    return out
