"""JSON Schema (draft 2020-12) validation of API payloads and of the suite's own files.

Schemas live in `schemas/*.json`, one per object, each with a stable `$id` under `SCHEMA_BASE`;
provider overlays live in `schemas/overlays/<overlay>.json` with one `$defs` entry per base schema
they narrow. Names are file stems::

    from conformance import schemas
    errors = schemas.validate("chat.completion.chunk", payload, overlay="fireworks")
    if errors:  # human-readable messages with JSON paths, e.g. "$.choices[0].index: '0' is not of type 'integer'"
        ...

An overlay is applied as ``{"allOf": [{"$ref": base}, {"$ref": overlay#/$defs/name}]}``: it can only
narrow the base schema, never loosen it. An overlay with no entry for a schema leaves it unchanged.

Some rules are not expressible in JSON Schema and are plain functions here:
`choice_index_errors` (choices[].index is 0..n-1 without gaps or duplicates) and `usage_errors`
(total_tokens == prompt_tokens + completion_tokens).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
OVERLAY_DIR = SCHEMA_DIR / "overlays"
SCHEMA_BASE = "https://openai-conformance.dev/schemas/"


class UnknownSchema(KeyError):
    """No schema (or overlay) of that name."""


def schema_names() -> list[str]:
    """Base schema names (file stems), sorted: "chat.completion", "completion.chunk", ..."""
    return sorted(p.name[: -len(".json")] for p in SCHEMA_DIR.glob("*.json"))


def overlay_names() -> list[str]:
    return sorted(p.name[: -len(".json")] for p in OVERLAY_DIR.glob("*.json"))


def schema_id(name: str) -> str:
    return f"{SCHEMA_BASE}{name}.json"


def overlay_id(overlay: str) -> str:
    return f"{SCHEMA_BASE}overlays/{overlay}.json"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@functools.cache
def _documents() -> dict[str, dict[str, Any]]:
    """`$id` -> schema document, for every base schema and overlay file."""
    docs: dict[str, dict[str, Any]] = {}
    for path in [*sorted(SCHEMA_DIR.glob("*.json")), *sorted(OVERLAY_DIR.glob("*.json"))]:
        doc = _load(path)
        sid = doc.get("$id")
        if not isinstance(sid, str):
            raise ValueError(f"{path}: schema has no $id")
        if sid in docs:
            raise ValueError(f"{path}: duplicate $id {sid}")
        docs[sid] = doc
    return docs


@functools.cache
def registry() -> Registry:
    """A `referencing.Registry` holding every schema and overlay, keyed by `$id`."""
    resources = [
        (sid, Resource.from_contents(doc, default_specification=DRAFT202012))
        for sid, doc in _documents().items()
    ]
    return Registry().with_resources(resources).crawl()


def schema(name: str) -> dict[str, Any]:
    """The base schema document of `name`."""
    try:
        return _documents()[schema_id(name)]
    except KeyError:
        raise UnknownSchema(f"unknown schema {name!r}; known: {', '.join(schema_names())}") from None


def overlay_schema(overlay: str) -> dict[str, Any]:
    """The overlay document named `overlay` (file stem under schemas/overlays/)."""
    try:
        return _documents()[overlay_id(overlay)]
    except KeyError:
        raise UnknownSchema(f"unknown overlay {overlay!r}; known: {', '.join(overlay_names())}") from None


@functools.cache
def validator(name: str, overlay: str | None = None) -> Draft202012Validator:
    """A cached validator for base schema `name`, narrowed by `overlay` (e.g. "fireworks") when given."""
    base = schema(name)
    if overlay is None:
        root: dict[str, Any] = base
    else:
        parts = overlay_schema(overlay).get("$defs", {})
        if name not in parts:
            root = base
        else:
            root = {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "allOf": [{"$ref": schema_id(name)}, {"$ref": f"{overlay_id(overlay)}#/$defs/{name}"}],
            }
    return Draft202012Validator(root, registry=registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _describe(error: ValidationError, overlay: str | None) -> str:
    if error.context:
        # anyOf/oneOf: report why the alternative that got furthest into the instance failed.
        best = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        message = f"{best.json_path}: {best.message} (no {error.validator} alternative matched at {error.json_path})"
    else:
        message = f"{error.json_path}: {error.message}"
    if overlay is not None and list(error.absolute_schema_path)[:2] == ["allOf", 1]:
        message += f" [{overlay} overlay]"
    return message


def _location(error: ValidationError) -> list[tuple[int, int | str]]:
    return [(0, part) if isinstance(part, int) else (1, str(part)) for part in error.absolute_path]


def validation_errors(name: str, instance: Any, overlay: str | None = None) -> list[ValidationError]:
    """The raw `ValidationError`s, ordered by location in the instance."""
    return sorted(validator(name, overlay).iter_errors(instance), key=lambda e: (_location(e), e.message))


def validate(name: str, instance: Any, overlay: str | None = None) -> list[str]:
    """Human-readable error messages with JSON paths; an empty list means `instance` is valid."""
    return [_describe(e, overlay) for e in validation_errors(name, instance, overlay)]


def choice_index_errors(
    choices: Iterable[Mapping[str, Any]], n: int | None = None, *, repeats: bool = False
) -> list[str]:
    """Check that choices[].index values are exactly 0..n-1: no gap, no duplicate, none out of range.

    `n` is the number of choices expected (`n` of the request times the number of prompts); None
    means "as many as there are choices". For a stream, pass the choices of every chunk with
    `repeats=True`: an index may then appear in many chunks, but every index of 0..n-1 must appear
    and no other.
    """
    choices = list(choices)
    problems: list[str] = []
    seen: list[int] = []
    for pos, choice in enumerate(choices):
        index = choice.get("index") if isinstance(choice, Mapping) else None
        if isinstance(index, bool) or not isinstance(index, int):
            problems.append(f"$.choices[{pos}].index: {index!r} is not an integer")
            continue
        seen.append(index)
    expected = n if n is not None else (len(set(seen)) if repeats else len(choices))
    if not repeats:
        duplicates = sorted({i for i in seen if seen.count(i) > 1})
        if duplicates:
            problems.append(f"choices[].index: duplicate index {duplicates} (indexes {seen})")
    out_of_range = sorted({i for i in seen if not 0 <= i < expected})
    if out_of_range:
        problems.append(f"choices[].index: {out_of_range} outside 0..{expected - 1} (indexes {seen})")
    missing = sorted(set(range(expected)) - set(seen))
    if missing:
        problems.append(f"choices[].index: missing {missing}; expected 0..{expected - 1} (indexes {seen})")
    return problems


def usage_errors(usage: Mapping[str, Any] | None) -> list[str]:
    """total_tokens == prompt_tokens + completion_tokens (when all three are integers)."""
    if not isinstance(usage, Mapping):
        return []
    prompt, completion, total = (usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (prompt, completion, total)):
        return []
    assert isinstance(prompt, int) and isinstance(completion, int)
    if total != prompt + completion:
        return [
            f"$.usage.total_tokens: {total} != prompt_tokens + completion_tokens ({prompt} + {completion})"
        ]
    return []


def is_done(payload: str) -> bool:
    """Whether an SSE `data:` payload is the end-of-stream marker `[DONE]`."""
    return payload.strip() == "[DONE]"
