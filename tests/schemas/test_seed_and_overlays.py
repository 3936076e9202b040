"""The seed's streaming example and the provider overlays.

An overlay is applied with allOf on top of a base schema: it may only narrow it. Every payload an
overlay accepts, the base accepts too; the converse is what the overlay is for.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conformance import schemas

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VALID_DIR = FIXTURES / "valid"
USAGE = {"prompt_tokens": 7, "total_tokens": 24, "completion_tokens": 17}


def sse_data(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order (one per event; multi-line data joined with \\n)."""
    events: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line == "":
            if current:
                events.append("\n".join(current))
            current = []
        elif line.startswith("data:"):
            value = line[len("data:") :]
            current.append(value[1:] if value.startswith(" ") else value)
    if current:
        events.append("\n".join(current))
    return events


def load(schema: str, example: str) -> Any:
    return json.loads((VALID_DIR / schema / f"{example}.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the seed's stream

SEED_EVENTS = sse_data((FIXTURES / "seed_stream.txt").read_text(encoding="utf-8"))
SEED_CHUNKS = [json.loads(e) for e in SEED_EVENTS if not schemas.is_done(e)]


def test_seed_stream_shape() -> None:
    assert len(SEED_EVENTS) == 5
    assert schemas.is_done(SEED_EVENTS[-1])
    assert not any(schemas.is_done(e) for e in SEED_EVENTS[:-1])
    assert len(SEED_CHUNKS) == 4
    assert (
        "".join(c["choices"][0]["text"] for c in SEED_CHUNKS)
        == "\n  print('Hello, World!')\n\n\nsay_hello_world()\n"
    )
    assert SEED_CHUNKS[-1]["usage"] == USAGE


@pytest.mark.parametrize("overlay", [None, "fireworks"])
@pytest.mark.parametrize("position", range(4))
def test_seed_chunk_validates(position: int, overlay: str | None) -> None:
    assert schemas.validate("completion.chunk", SEED_CHUNKS[position], overlay) == []


def test_seed_stream_semantics() -> None:
    choices = [choice for chunk in SEED_CHUNKS for choice in chunk["choices"]]
    assert schemas.choice_index_errors(choices, 1, repeats=True) == []
    assert schemas.usage_errors(SEED_CHUNKS[-1]["usage"]) == []
    assert len({(c["id"], c["created"], c["model"]) for c in SEED_CHUNKS}) == 1


def test_seed_chunks_against_the_response_schema() -> None:
    """The seed's final chunk is also a valid non-stream completion (same shape, finish_reason set)."""
    assert schemas.validate("completion", SEED_CHUNKS[-1]) == []
    assert schemas.validate("completion", SEED_CHUNKS[0])  # finish_reason null is a chunk-only state


def test_done_marker() -> None:
    assert schemas.is_done("[DONE]") and schemas.is_done(" [DONE] ")
    assert not schemas.is_done('{"done": true}') and not schemas.is_done("[done]")


# ---------------------------------------------------------------- fireworks overlay


def _non_final(schema: str) -> Any:
    if schema == "completion.chunk":
        return copy.deepcopy(SEED_CHUNKS[0])
    chunk = load("chat.completion.chunk", "content_delta")
    chunk["usage"] = None
    return chunk


def _final(schema: str) -> Any:
    if schema == "completion.chunk":
        return copy.deepcopy(SEED_CHUNKS[-1])
    return load("chat.completion.chunk", "fireworks_final_with_usage")


CHUNKS = ["completion.chunk", "chat.completion.chunk"]


@pytest.mark.parametrize("schema", CHUNKS)
def test_fireworks_accepts_its_documented_stream(schema: str) -> None:
    assert schemas.validate(schema, _non_final(schema), "fireworks") == []
    assert schemas.validate(schema, _final(schema), "fireworks") == []


def _usage_on_non_final(chunk: dict[str, Any]) -> None:
    chunk["usage"] = dict(USAGE)


def _drop_usage(chunk: dict[str, Any]) -> None:
    del chunk["usage"]


def _usage_null_on_final(chunk: dict[str, Any]) -> None:
    chunk["usage"] = None


OVERLAY_NEAR_MISSES = [
    ("non-final chunk with a usage object", _non_final, _usage_on_non_final),
    ("non-final chunk without the usage key", _non_final, _drop_usage),
    ("final chunk missing usage", _final, _drop_usage),
    ("final chunk with usage null", _final, _usage_null_on_final),
]


@pytest.mark.parametrize("schema", CHUNKS)
@pytest.mark.parametrize(
    ("make", "mutate"), [c[1:] for c in OVERLAY_NEAR_MISSES], ids=[c[0] for c in OVERLAY_NEAR_MISSES]
)
def test_fireworks_overlay_narrows_never_loosens(schema: str, make: Any, mutate: Any) -> None:
    chunk = make(schema)
    mutate(chunk)
    assert schemas.validate(schema, chunk) == [], "the base schema alone accepts it"
    errors = schemas.validate(schema, chunk, "fireworks")
    assert errors and all(e.endswith("[fireworks overlay]") for e in errors), errors


@pytest.mark.parametrize("schema", CHUNKS)
def test_fireworks_final_usage_is_still_checked_by_the_base(schema: str) -> None:
    chunk = _final(schema)
    chunk["usage"]["total_tokens"] = "24"
    assert schemas.validate(schema, chunk)
    assert schemas.validate(schema, chunk, "fireworks")


def test_overlay_never_accepts_what_the_base_rejects() -> None:
    for path in sorted(VALID_DIR.glob("*/*.json")):
        instance = json.loads(path.read_text(encoding="utf-8"))
        for mutated in (dict(instance, object="nope"), {k: v for k, v in instance.items() if k != "model"}):
            if schemas.validate(path.parent.name, mutated):
                for overlay in schemas.overlay_names():
                    assert schemas.validate(path.parent.name, mutated, overlay), (path, overlay)


@pytest.mark.parametrize("schema", ["completion.request", "chat.completion.request"])
def test_fireworks_context_length_exceeded_behavior(schema: str) -> None:
    request = load(schema, "fireworks_extension")
    for value in ("truncate", "error"):
        request["context_length_exceeded_behavior"] = value
        assert schemas.validate(schema, request, "fireworks") == []
    request["context_length_exceeded_behavior"] = "clamp"
    assert schemas.validate(schema, request) == [], "unknown fields are the provider's business in the base"
    (error,) = schemas.validate(schema, request, "fireworks")
    assert error.startswith("$.context_length_exceeded_behavior: 'clamp' is not one of")


# ---------------------------------------------------------------- include_usage overlay


@pytest.mark.parametrize("schema", CHUNKS)
def test_include_usage_overlay(schema: str) -> None:
    final = load(schema, "include_usage_final")
    middle = load(schema, "include_usage_null_usage")
    assert schemas.validate(schema, final, "include_usage") == []
    assert schemas.validate(schema, middle, "include_usage") == []
    # Fireworks-style usage on the chunk with finish_reason is not the include_usage shape.
    assert schemas.validate(schema, _final(schema), "include_usage")
    for bad in (
        dict(final, usage=None),
        {k: v for k, v in middle.items() if k != "usage"},
        dict(middle, usage=dict(USAGE)),
    ):
        assert schemas.validate(schema, bad) == []
        assert schemas.validate(schema, bad, "include_usage")
