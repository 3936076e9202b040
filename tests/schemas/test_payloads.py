"""Valid payload examples (fixtures/valid/<schema>/*.json) and a catalogue of near-miss invalid ones.

Every near miss is a valid example with exactly one thing wrong, so a rejection can only come from
that one thing; each case also names the JSON path the error must point at.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance import schemas

VALID_DIR = Path(__file__).resolve().parent / "fixtures" / "valid"
VALID = sorted(VALID_DIR.glob("*/*.json"))

Mutation = Callable[[Any], None]


def load(schema: str, example: str) -> Any:
    return json.loads((VALID_DIR / schema / f"{example}.json").read_text(encoding="utf-8"))


def _walk(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def drop(*path: Any) -> Mutation:
    def mutate(doc: Any) -> None:
        del _walk(doc, path[:-1])[path[-1]]

    return mutate


def put(*path: Any, value: Any) -> Mutation:
    def mutate(doc: Any) -> None:
        _walk(doc, path[:-1])[path[-1]] = value

    return mutate


def replace(value: Any) -> Mutation:
    """Replace the whole document (for bodies unrelated to the example, e.g. FastAPI's default)."""

    def mutate(doc: Any) -> None:
        doc.clear()
        doc.update(value)

    return mutate


USAGE = ("usage",)
CHAT_CHOICE = ("choices", 0)

# (id, schema, example, mutation, JSON path the error must name)
# fmt: off
NEAR_MISSES: list[tuple[str, str, str, Mutation, str]] = [
    # ---- chat.completion
    ("missing id", "chat.completion", "openai_basic", drop("id"), "$"),
    ("missing object", "chat.completion", "openai_basic", drop("object"), "$"),
    ("missing created", "chat.completion", "openai_basic", drop("created"), "$"),
    ("missing model", "chat.completion", "openai_basic", drop("model"), "$"),
    ("missing choices", "chat.completion", "openai_basic", drop("choices"), "$"),
    ("choice missing index", "chat.completion", "openai_basic", drop(*CHAT_CHOICE, "index"), "$.choices[0]"),
    ("choice missing message", "chat.completion", "openai_basic", drop(*CHAT_CHOICE, "message"), "$.choices[0]"),
    ("choice missing finish_reason", "chat.completion", "openai_basic", drop(*CHAT_CHOICE, "finish_reason"),
     "$.choices[0]"),
    ("choice missing logprobs key", "chat.completion", "openai_basic", drop(*CHAT_CHOICE, "logprobs"),
     "$.choices[0]"),
    ("finish_reason null in a non-stream response", "chat.completion", "openai_basic",
     put(*CHAT_CHOICE, "finish_reason", value=None), "$.choices[0].finish_reason"),
    ("finish_reason outside the enum", "chat.completion", "openai_basic",
     put(*CHAT_CHOICE, "finish_reason", value="eos"), "$.choices[0].finish_reason"),
    ("created as a string", "chat.completion", "openai_basic", put("created", value="1741569952"), "$.created"),
    ("created as a float", "chat.completion", "openai_basic", put("created", value=1741569952.5), "$.created"),
    ("index as a string", "chat.completion", "openai_basic", put(*CHAT_CHOICE, "index", value="0"),
     "$.choices[0].index"),
    ("index negative", "chat.completion", "openai_basic", put(*CHAT_CHOICE, "index", value=-1), "$.choices[0].index"),
    ("object text_completion on chat", "chat.completion", "openai_basic", put("object", value="text_completion"),
     "$.object"),
    ("object chat.completion.chunk on a response", "chat.completion", "openai_basic",
     put("object", value="chat.completion.chunk"), "$.object"),
    ("message role user", "chat.completion", "openai_basic", put(*CHAT_CHOICE, "message", "role", value="user"),
     "$.choices[0].message.role"),
    ("message missing content key", "chat.completion", "openai_basic", drop(*CHAT_CHOICE, "message", "content"),
     "$.choices[0].message"),
    ("message missing refusal key", "chat.completion", "openai_basic", drop(*CHAT_CHOICE, "message", "refusal"),
     "$.choices[0].message"),
    ("tool call arguments as an object", "chat.completion", "tool_calls",
     put(*CHAT_CHOICE, "message", "tool_calls", 0, "function", "arguments", value={"location": "Boston"}),
     "$.choices[0].message.tool_calls[0].function.arguments"),
    ("tool call missing id", "chat.completion", "tool_calls", drop(*CHAT_CHOICE, "message", "tool_calls", 0, "id"),
     "$.choices[0].message.tool_calls[0]"),
    ("logprob entry missing bytes", "chat.completion", "logprobs",
     drop(*CHAT_CHOICE, "logprobs", "content", 0, "bytes"), "$.choices[0].logprobs.content[0]"),
    ("logprobs missing refusal key", "chat.completion", "logprobs", drop(*CHAT_CHOICE, "logprobs", "refusal"),
     "$.choices[0].logprobs"),
    ("usage tokens negative", "chat.completion", "openai_basic", put(*USAGE, "completion_tokens", value=-1),
     "$.usage.completion_tokens"),
    ("usage tokens as strings", "chat.completion", "openai_basic", put(*USAGE, "prompt_tokens", value="19"),
     "$.usage.prompt_tokens"),
    ("usage null in a non-stream response", "chat.completion", "openai_basic", put("usage", value=None), "$.usage"),
    # ---- chat.completion.chunk
    ("chunk missing id", "chat.completion.chunk", "content_delta", drop("id"), "$"),
    ("chunk missing created", "chat.completion.chunk", "content_delta", drop("created"), "$"),
    ("chunk missing model", "chat.completion.chunk", "content_delta", drop("model"), "$"),
    ("chunk missing choices", "chat.completion.chunk", "include_usage_final", drop("choices"), "$"),
    ("chunk object chat.completion", "chat.completion.chunk", "content_delta", put("object", value="chat.completion"),
     "$.object"),
    ("chunk choice missing finish_reason", "chat.completion.chunk", "content_delta",
     drop(*CHAT_CHOICE, "finish_reason"), "$.choices[0]"),
    ("chunk choice missing index", "chat.completion.chunk", "content_delta", drop(*CHAT_CHOICE, "index"),
     "$.choices[0]"),
    ("chunk choice missing delta", "chat.completion.chunk", "finish_stop", drop(*CHAT_CHOICE, "delta"),
     "$.choices[0]"),
    ("chunk choice with message instead of delta", "chat.completion.chunk", "content_delta",
     lambda d: d["choices"][0].update(message=d["choices"][0].pop("delta")), "$.choices[0]"),
    ("chunk finish_reason outside the enum", "chat.completion.chunk", "finish_stop",
     put(*CHAT_CHOICE, "finish_reason", value="eos_token"), "$.choices[0].finish_reason"),
    ("chunk finish_reason empty string", "chat.completion.chunk", "finish_stop",
     put(*CHAT_CHOICE, "finish_reason", value=""), "$.choices[0].finish_reason"),
    ("chunk index as a string", "chat.completion.chunk", "content_delta", put(*CHAT_CHOICE, "index", value="0"),
     "$.choices[0].index"),
    ("chunk created as a string", "chat.completion.chunk", "content_delta", put("created", value="1694268190"),
     "$.created"),
    ("delta role outside the enum", "chat.completion.chunk", "role_delta",
     put(*CHAT_CHOICE, "delta", "role", value="bot"), "$.choices[0].delta.role"),
    ("delta content as a list", "chat.completion.chunk", "content_delta",
     put(*CHAT_CHOICE, "delta", "content", value=["Hello"]), "$.choices[0].delta.content"),
    ("tool call delta missing index", "chat.completion.chunk", "tool_calls_delta_arguments",
     drop(*CHAT_CHOICE, "delta", "tool_calls", 0, "index"), "$.choices[0].delta.tool_calls[0]"),
    ("chunk usage tokens as strings", "chat.completion.chunk", "include_usage_final",
     put(*USAGE, "total_tokens", value="21"), "$.usage.total_tokens"),
    ("chunk usage missing total_tokens", "chat.completion.chunk", "include_usage_final",
     drop(*USAGE, "total_tokens"), "$.usage"),
    # ---- completion
    ("completion missing id", "completion", "openai_spec_example", drop("id"), "$"),
    ("completion missing object", "completion", "openai_spec_example", drop("object"), "$"),
    ("completion missing created", "completion", "openai_spec_example", drop("created"), "$"),
    ("completion missing model", "completion", "openai_spec_example", drop("model"), "$"),
    ("completion missing choices", "completion", "openai_spec_example", drop("choices"), "$"),
    ("completion choice missing text", "completion", "openai_spec_example", drop(*CHAT_CHOICE, "text"),
     "$.choices[0]"),
    ("completion choice missing index", "completion", "openai_spec_example", drop(*CHAT_CHOICE, "index"),
     "$.choices[0]"),
    ("completion choice missing logprobs key", "completion", "openai_spec_example",
     drop(*CHAT_CHOICE, "logprobs"), "$.choices[0]"),
    ("completion choice missing finish_reason", "completion", "openai_spec_example",
     drop(*CHAT_CHOICE, "finish_reason"), "$.choices[0]"),
    ("completion finish_reason tool_calls", "completion", "openai_spec_example",
     put(*CHAT_CHOICE, "finish_reason", value="tool_calls"), "$.choices[0].finish_reason"),
    ("completion object chat.completion", "completion", "openai_spec_example",
     put("object", value="chat.completion"), "$.object"),
    ("completion object text_completion.chunk", "completion", "openai_spec_example",
     put("object", value="text_completion.chunk"), "$.object"),
    ("completion created as a string", "completion", "openai_spec_example", put("created", value="1589478378"),
     "$.created"),
    ("completion text null", "completion", "openai_spec_example", put(*CHAT_CHOICE, "text", value=None),
     "$.choices[0].text"),
    ("completion token_logprobs as strings", "completion", "echo_logprobs",
     put(*CHAT_CHOICE, "logprobs", "token_logprobs", 1, value="-6.21"), "$.choices[0].logprobs.token_logprobs[1]"),
    ("completion usage negative", "completion", "openai_spec_example", put(*USAGE, "total_tokens", value=-12),
     "$.usage.total_tokens"),
    # ---- completion.chunk
    ("completion chunk missing id", "completion.chunk", "openai_text", drop("id"), "$"),
    ("completion chunk missing finish_reason", "completion.chunk", "openai_text",
     drop(*CHAT_CHOICE, "finish_reason"), "$.choices[0]"),
    ("completion chunk missing index", "completion.chunk", "openai_text", drop(*CHAT_CHOICE, "index"),
     "$.choices[0]"),
    ("completion chunk index as a string", "completion.chunk", "openai_text", put(*CHAT_CHOICE, "index", value="0"),
     "$.choices[0].index"),
    ("completion chunk object chat.completion.chunk", "completion.chunk", "openai_text",
     put("object", value="chat.completion.chunk"), "$.object"),
    ("completion chunk finish_reason outside the enum", "completion.chunk", "openai_final",
     put(*CHAT_CHOICE, "finish_reason", value="max_tokens"), "$.choices[0].finish_reason"),
    ("completion chunk usage as a string", "completion.chunk", "include_usage_final", put("usage", value="20"),
     "$.usage"),
    # ---- usage
    ("usage missing prompt_tokens", "usage", "basic", drop("prompt_tokens"), "$"),
    ("usage missing completion_tokens", "usage", "basic", drop("completion_tokens"), "$"),
    ("usage missing total_tokens", "usage", "basic", drop("total_tokens"), "$"),
    ("usage negative prompt_tokens", "usage", "basic", put("prompt_tokens", value=-5), "$.prompt_tokens"),
    ("usage total_tokens as a string", "usage", "basic", put("total_tokens", value="12"), "$.total_tokens"),
    ("usage tokens as floats", "usage", "basic", put("completion_tokens", value=7.5), "$.completion_tokens"),
    ("usage cached_tokens as a string", "usage", "with_details",
     put("prompt_tokens_details", "cached_tokens", value="0"), "$.prompt_tokens_details.cached_tokens"),
    # ---- error
    ("FastAPI detail instead of error", "error", "invalid_api_key",
     replace({"detail": [{"loc": ["body", "model"], "msg": "field required", "type": "value_error.missing"}]}),
     "$"),
    ("error as a bare string", "error", "invalid_api_key", put("error", value="Invalid API key"), "$.error"),
    ("error missing type", "error", "invalid_api_key", drop("error", "type"), "$.error"),
    ("error missing message", "error", "invalid_api_key", drop("error", "message"), "$.error"),
    ("error missing param key", "error", "invalid_api_key", drop("error", "param"), "$.error"),
    ("error missing code key", "error", "invalid_api_key", drop("error", "code"), "$.error"),
    ("error code as an integer", "error", "context_length_exceeded", put("error", "code", value=400), "$.error.code"),
    ("error type null", "error", "server_error_null_code", put("error", "type", value=None), "$.error.type"),
    # ---- model / model.list
    ("model missing id", "model", "openai", drop("id"), "$"),
    ("model missing owned_by", "model", "openai", drop("owned_by"), "$"),
    ("model missing created", "model", "openai", drop("created"), "$"),
    ("model object models", "model", "openai", put("object", value="models"), "$.object"),
    ("model created as a string", "model", "openai", put("created", value="1721172741"), "$.created"),
    ("model list object model", "model.list", "openai", put("object", value="model"), "$.object"),
    ("model list missing data", "model.list", "openai", drop("data"), "$"),
    ("model list data as an object", "model.list", "empty", put("data", value={}), "$.data"),
    ("model list entry missing owned_by", "model.list", "openai", drop("data", 0, "owned_by"), "$.data[0]"),
    # ---- completion.request
    ("request missing model", "completion.request", "basic", drop("model"), "$"),
    ("request missing prompt", "completion.request", "basic", drop("prompt"), "$"),
    ("request stop with 5 items", "completion.request", "prompt_list_stop_list",
     put("stop", value=["\n", "###", "END", ".", "!"]), "$.stop"),
    ("request stop empty list", "completion.request", "prompt_list_stop_list", put("stop", value=[]), "$.stop"),
    ("request stop as a number", "completion.request", "basic", put("stop", value=13), "$.stop"),
    ("request n 0", "completion.request", "prompt_list_stop_list", put("n", value=0), "$.n"),
    ("request n 129", "completion.request", "prompt_list_stop_list", put("n", value=129), "$.n"),
    ("request temperature 2.5", "completion.request", "basic", put("temperature", value=2.5), "$.temperature"),
    ("request temperature negative", "completion.request", "basic", put("temperature", value=-0.1), "$.temperature"),
    ("request top_p 1.5", "completion.request", "basic", put("top_p", value=1.5), "$.top_p"),
    ("request logprobs 6", "completion.request", "prompt_list_stop_list", put("logprobs", value=6), "$.logprobs"),
    ("request best_of 21", "completion.request", "stream_include_usage", put("best_of", value=21), "$.best_of"),
    ("request presence_penalty 3", "completion.request", "stream_include_usage",
     put("presence_penalty", value=3), "$.presence_penalty"),
    ("request logit_bias 101", "completion.request", "stream_include_usage",
     put("logit_bias", "50256", value=101), "$.logit_bias['50256']"),
    ("request max_tokens negative", "completion.request", "basic", put("max_tokens", value=-45), "$.max_tokens"),
    ("request max_tokens as a string", "completion.request", "basic", put("max_tokens", value="7"), "$.max_tokens"),
    ("request stream as a string", "completion.request", "seed_fireworks_stream", put("stream", value="true"),
     "$.stream"),
    ("request include_usage as a string", "completion.request", "stream_include_usage",
     put("stream_options", "include_usage", value="yes"), "$.stream_options.include_usage"),
    ("request prompt as a number", "completion.request", "basic", put("prompt", value=42), "$.prompt"),
    # ---- chat.completion.request
    ("chat request missing messages", "chat.completion.request", "basic", drop("messages"), "$"),
    ("chat request missing model", "chat.completion.request", "basic", drop("model"), "$"),
    ("chat request empty messages", "chat.completion.request", "basic", put("messages", value=[]), "$.messages"),
    ("chat request message role bot", "chat.completion.request", "basic", put("messages", 1, "role", value="bot"),
     "$.messages[1].role"),
    ("chat request message missing role", "chat.completion.request", "basic", drop("messages", 1, "role"),
     "$.messages[1]"),
    ("chat request user message missing content", "chat.completion.request", "basic",
     drop("messages", 1, "content"), "$.messages[1]"),
    ("chat request tool message missing tool_call_id", "chat.completion.request", "every_role",
     drop("messages", 4, "tool_call_id"), "$.messages[4]"),
    ("chat request text part missing text", "chat.completion.request", "every_role",
     drop("messages", 2, "content", 0, "text"), "$.messages[2].content[0]"),
    ("chat request image part missing url", "chat.completion.request", "every_role",
     drop("messages", 2, "content", 1, "image_url", "url"), "$.messages[2].content[1].image_url"),
    ("chat request stop with 5 items", "chat.completion.request", "sampling_and_stream",
     put("stop", value=["a", "b", "c", "d", "e"]), "$.stop"),
    ("chat request n 0", "chat.completion.request", "sampling_and_stream", put("n", value=0), "$.n"),
    ("chat request n 200", "chat.completion.request", "sampling_and_stream", put("n", value=200), "$.n"),
    ("chat request temperature 3", "chat.completion.request", "sampling_and_stream", put("temperature", value=3),
     "$.temperature"),
    ("chat request top_logprobs 21", "chat.completion.request", "sampling_and_stream",
     put("top_logprobs", value=21), "$.top_logprobs"),
    ("chat request logprobs as an integer", "chat.completion.request", "sampling_and_stream",
     put("logprobs", value=5), "$.logprobs"),
    ("chat request frequency_penalty -2.5", "chat.completion.request", "sampling_and_stream",
     put("frequency_penalty", value=-2.5), "$.frequency_penalty"),
    ("chat request tool type retrieval", "chat.completion.request", "every_role",
     put("tools", 0, "type", value="retrieval"), "$.tools[0].type"),
    ("chat request tool function missing name", "chat.completion.request", "every_role",
     drop("tools", 0, "function", "name"), "$.tools[0].function"),
    ("chat request tool_choice any", "chat.completion.request", "legacy_functions",
     put("tool_choice", value="any"), "$.tool_choice"),
    ("chat request functions empty", "chat.completion.request", "legacy_functions", put("functions", value=[]),
     "$.functions"),
    ("chat request response_format xml", "chat.completion.request", "legacy_functions",
     put("response_format", "type", value="xml"), "$.response_format.type"),
]
# fmt: on


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_valid_example(path: Path) -> None:
    instance = json.loads(path.read_text(encoding="utf-8"))
    assert schemas.validate(path.parent.name, instance) == []


def test_every_api_schema_has_valid_examples() -> None:
    with_examples = {p.parent.name for p in VALID}
    assert with_examples == set(schemas.schema_names()) - {"report.results", "profile"}


@pytest.mark.parametrize(
    ("schema", "example", "mutate", "where"), [c[1:] for c in NEAR_MISSES], ids=[c[0] for c in NEAR_MISSES]
)
def test_near_miss_is_rejected(schema: str, example: str, mutate: Mutation, where: str) -> None:
    original = load(schema, example)
    assert schemas.validate(schema, original) == [], "the near miss must start from a valid example"
    instance = copy.deepcopy(original)
    mutate(instance)
    assert instance != original
    errors = schemas.validate(schema, instance)
    assert errors, "near miss accepted"
    assert any(e.startswith(f"{where}: ") for e in errors), errors


def test_near_miss_ids_are_unique() -> None:
    ids = [c[0] for c in NEAR_MISSES]
    assert len(ids) == len(set(ids))


def test_error_messages_are_readable() -> None:
    chunk = load("chat.completion.chunk", "content_delta")
    chunk["choices"][0]["index"] = "0"
    assert schemas.validate("chat.completion.chunk", chunk) == [
        "$.choices[0].index: '0' is not of type 'integer'"
    ]
    request = load("completion.request", "basic")
    request["stop"] = ["a", "b", "c", "d", "e"]
    (message,) = schemas.validate("completion.request", request)
    assert message.startswith("$.stop: ") and "is too long" in message  # names the closest alternative


# ---- choices[].index: 0..n-1 without gaps (not expressible in JSON Schema)


def _choices(*indexes: Any) -> list[dict[str, Any]]:
    return [{"index": i, "text": ""} for i in indexes]


@pytest.mark.parametrize(
    ("indexes", "n"),
    [((0,), 1), ((0, 1, 2), 3), ((1, 0), 2), ((0, 1, 2, 3), None), ((), 0), ((), None)],
    ids=["single", "three", "out of order", "n from length", "none expected", "empty"],
)
def test_choice_indexes_ok(indexes: tuple[int, ...], n: int | None) -> None:
    assert schemas.choice_index_errors(_choices(*indexes), n) == []


@pytest.mark.parametrize(
    ("indexes", "n", "fragment"),
    [
        ((0, 2), 2, "missing [1]"),
        ((0, 2), None, "missing [1]"),
        ((0, 0), 2, "duplicate index [0]"),
        ((0, 0), None, "duplicate index [0]"),
        ((1,), 1, "missing [0]"),
        ((0, 1), 3, "missing [2]"),
        ((0, 1, 2), 2, "[2] outside 0..1"),
        ((-1, 0), None, "[-1] outside"),
        ((0, "1"), 2, "$.choices[1].index: '1' is not an integer"),
        ((0, True), 2, "$.choices[1].index: True is not an integer"),
    ],
    ids=[
        "gap [0, 2]",
        "gap [0, 2] without n",
        "duplicates",
        "duplicates without n",
        "starts at 1",
        "too few",
        "too many",
        "negative",
        "string index",
        "bool index",
    ],
)
def test_choice_index_errors(indexes: tuple[Any, ...], n: int | None, fragment: str) -> None:
    problems = schemas.choice_index_errors(_choices(*indexes), n)
    assert any(fragment in p for p in problems), problems


def test_choice_indexes_over_a_stream() -> None:
    stream = _choices(0, 1, 0, 1, 1, 0)
    assert schemas.choice_index_errors(stream, 2, repeats=True) == []
    assert schemas.choice_index_errors(stream, None, repeats=True) == []
    assert any("missing [2]" in p for p in schemas.choice_index_errors(stream, 3, repeats=True))
    assert any("outside" in p for p in schemas.choice_index_errors(_choices(0, 2, 0), 2, repeats=True))


def test_usage_errors() -> None:
    assert schemas.usage_errors({"prompt_tokens": 7, "completion_tokens": 17, "total_tokens": 24}) == []
    assert schemas.usage_errors(None) == []
    (problem,) = schemas.usage_errors({"prompt_tokens": 7, "completion_tokens": 17, "total_tokens": 23})
    assert problem.startswith("$.usage.total_tokens: 23 != ")
