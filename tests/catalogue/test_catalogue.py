"""The requirement catalogue, the manifest, and their agreement with profiles and scenarios."""

from __future__ import annotations

import re

import pytest
import yaml

from conformance.catalogue import AREAS, REQUIREMENTS_DIR, _parse, load_catalogue
from conformance.manifest import check_manifest, manifest_problems
from conformance.profiles import AXES, UNSUPPORTED_OPTIONS

ID = re.compile(r"^[a-z_]+(\.[a-z0-9_]+)+$")


def test_catalogue_loads_with_enough_requirements() -> None:
    assert len(load_catalogue()) >= 40


@pytest.mark.parametrize("path", sorted(REQUIREMENTS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_area_file_valid(path) -> None:
    assert path.stem in AREAS
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["area"] == path.stem and data.get("title")
    assert _parse(path), f"{path.name} has no requirements"


def test_ids_unique_and_well_formed() -> None:
    ids = [req.id for path in REQUIREMENTS_DIR.glob("*.yaml") for req in _parse(path)]
    assert len(ids) == len(set(ids))
    assert all(ID.match(i) for i in ids), [i for i in ids if not ID.match(i)]


def test_every_requirement_has_a_source_quote_and_statement() -> None:
    for req in load_catalogue().values():
        assert req.source.quote.strip() and req.source.url.strip(), req.id
        assert req.source.url.startswith(("https://", "seed:", "openapi:")), req.id
        assert any(word in req.statement for word in ("MUST", "SHOULD", "MAY")), req.id
        assert req.level.value in req.statement or req.level.value == "MUST" and "MUST" in req.statement, req.id


def test_seed_differences_have_requirements() -> None:
    cat = load_catalogue()
    seed = {
        "stop": ["stop.included", "stop.excluded", "stop.truncation_point", "stop.first_of_many", "stop.mid_token",
                 "stop.repeated", "stop.prompt_only", "stop.stream_no_leak"],
        "max_tokens": ["max_tokens.overflow_clamped", "max_tokens.clamp_arithmetic", "max_tokens.overflow_rejected",
                       "max_tokens.cleb_error", "max_tokens.cleb_truncate", "max_tokens.cleb_invalid",
                       "max_tokens.prompt_exceeds_context"],
        "usage": ["usage.stream_final_chunk", "usage.stream_null_elsewhere", "usage.stream_matches_non_stream"],
        "unsupported": [f"params.{o}.{k}" for o in UNSUPPORTED_OPTIONS for k in ("default_accepted", "rejected",
                                                                                  "supported")],
    }
    for difference, ids in seed.items():
        missing = [i for i in ids if i not in cat]
        assert not missing, f"{difference}: {missing}"
    assert cat["stop.included"].source.url == "seed:fireworks-openai-compatibility.txt"


def test_applies_when_uses_known_axes_and_values() -> None:
    for req in load_catalogue().values():
        for axis, wanted in req.applies_when.items():
            assert axis in AXES, (req.id, axis)
            for value in wanted if isinstance(wanted, list) else [wanted]:
                assert value in AXES[axis], (req.id, axis, value)


def test_checked_in_manifest_agrees() -> None:
    assert check_manifest() == []


def test_manifest_checker_refuses_requirement_without_scenario() -> None:
    catalogue = {"stop.a": object(), "stop.b": object()}
    problems = manifest_problems({"s1": ("stop.a",)}, catalogue, None)
    assert problems == ["requirement stop.b has no scenario"]


def test_manifest_checker_refuses_unknown_requirement() -> None:
    problems = manifest_problems({"s1": ("stop.a", "stop.zzz")}, {"stop.a": object()}, None)
    assert any("unknown requirement stop.zzz" in p and "s1" in p for p in problems)


def test_manifest_checker_refuses_stale_file() -> None:
    catalogue = {"stop.a": object()}
    assert manifest_problems({"s1": ("stop.a",)}, catalogue, {"stop.a": ["s1"]}) == []
    problems = manifest_problems({"s1": ("stop.a",)}, catalogue, {"stop.a": ["old"]})
    assert problems and "out of date" in problems[0]
