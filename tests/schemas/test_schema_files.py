"""Every schema file is a well-formed draft 2020-12 schema with a stable $id, and every $ref resolves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from conformance import schemas

SCHEMA_FILES = sorted(schemas.SCHEMA_DIR.glob("*.json")) + sorted(schemas.OVERLAY_DIR.glob("*.json"))
OPENAPI = Path("/work/shared/openai-openapi/openapi.yaml")

# schema name -> OpenAPI components its description must cite
DERIVED_FROM = {
    "completion.request": ["CreateCompletionRequest"],
    "completion": ["CreateCompletionResponse"],
    "completion.chunk": ["CreateCompletionResponse"],
    "chat.completion.request": ["CreateChatCompletionRequest"],
    "chat.completion": ["CreateChatCompletionResponse"],
    "chat.completion.chunk": ["CreateChatCompletionStreamResponse"],
    "usage": ["CompletionUsage"],
    "error": ["ErrorResponse", "Error"],
    "model": ["Model"],
    "model.list": ["ListModelsResponse"],
}


def _id(path: Path) -> str:
    return str(path.relative_to(schemas.SCHEMA_DIR))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_expected_schema_set() -> None:
    assert set(DERIVED_FROM) | {"report.results", "profile"} == set(schemas.schema_names())
    assert "fireworks" in schemas.overlay_names()


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_id)
def test_valid_against_metaschema(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["title"] and doc["description"]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_id)
def test_stable_id_matches_file_name(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["$id"] == schemas.SCHEMA_BASE + path.relative_to(schemas.SCHEMA_DIR).as_posix()


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_id)
def test_readable_two_space_json(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_id)
def test_every_ref_resolves(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    resolver = schemas.registry().resolver(base_uri=doc["$id"])
    refs = _refs(doc)
    for ref in refs:
        resolved = resolver.lookup(ref)  # raises Unresolvable if not
        assert isinstance(resolved.contents, dict | bool), ref
    # refs between files are relative to the $id, never absolute or local file paths
    assert all(not ref.startswith(("http", "/", "file:")) for ref in refs)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_id)
def test_registry_holds_every_file(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert schemas.registry().contents(doc["$id"]) == doc


@pytest.mark.parametrize("name", sorted(DERIVED_FROM))
def test_description_cites_openapi_component(name: str) -> None:
    description = schemas.schema(name)["description"]
    for component in DERIVED_FROM[name]:
        assert component in description
    if OPENAPI.is_file():
        spec = OPENAPI.read_text(encoding="utf-8")
        for component in DERIVED_FROM[name]:
            assert f"\n    {component}:\n" in spec, f"{component} is not an OpenAPI component"


@pytest.mark.parametrize("name", sorted(DERIVED_FROM))
def test_api_objects_accept_provider_fields(name: str) -> None:
    """Providers may add fields: no API schema closes its top-level object."""
    assert schemas.schema(name).get("additionalProperties", True) is not False


def test_validator_is_cached_and_names_are_checked() -> None:
    assert schemas.validator("completion.chunk", "fireworks") is schemas.validator(
        "completion.chunk", "fireworks"
    )
    with pytest.raises(schemas.UnknownSchema):
        schemas.validator("completion.chunks")
    with pytest.raises(schemas.UnknownSchema):
        schemas.validator("completion.chunk", "fireworkz")
    # An overlay without an entry for a schema leaves the base unchanged.
    assert (
        schemas.validate("model", {"id": "m", "object": "model", "created": 1, "owned_by": "x"}, "fireworks")
        == []
    )


def test_format_checker_is_used() -> None:
    model = {"id": "m", "object": "model", "created": 1, "owned_by": "x", "shutdown_date": "2026-13-45"}
    assert any("shutdown_date" in e for e in schemas.validate("model", model))
