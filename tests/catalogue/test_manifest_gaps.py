"""The manifest refuses a test without a requirement: at registration and in the manifest check."""

from __future__ import annotations

import pytest

from conformance.manifest import check_manifest, manifest_problems
from conformance.scenario import REGISTRY, Context, scenario


def _noop(ctx: Context) -> None:
    del ctx


@pytest.mark.parametrize("covers", [[], ()], ids=["list", "tuple"])
def test_scenario_covering_nothing_is_refused_at_registration(covers: list[str] | tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"'gaps\.covers_nothing' covers no requirement"):
        scenario("gaps.covers_nothing", covers=covers)(_noop)
    assert "gaps.covers_nothing" not in REGISTRY


def test_scenario_covers_given_as_a_string_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a list"):
        scenario("gaps.covers_string", covers="stop.included")  # type: ignore[arg-type]
    assert "gaps.covers_string" not in REGISTRY


def test_manifest_checker_refuses_scenario_covering_nothing() -> None:
    catalogue = {"stop.a": object()}
    problems = manifest_problems({"s1": ("stop.a",), "empty": ()}, catalogue, None)
    assert problems == ["scenario empty covers no requirement (a test without a requirement)"]
    # ...also when the checked-in manifest agrees otherwise (an empty scenario leaves no trace in it)
    problems = manifest_problems({"s1": ("stop.a",), "empty": []}, catalogue, {"stop.a": ["s1"]})
    assert problems == ["scenario empty covers no requirement (a test without a requirement)"]


def test_every_registered_scenario_covers_something() -> None:
    assert not [p for p in check_manifest() if "covers no requirement" in p]
    assert REGISTRY and all(spec.covers for spec in REGISTRY.values())
