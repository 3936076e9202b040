"""An endpoint whose /v1/models reports no context length: the context-dependent max_tokens.*
requirements are not applicable, telling the user to pass --context-length; given it, they are evaluated."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import conformance.scenarios  # noqa: F401  (registers every scenario)
from conformance.results import RunReport, Status
from conformance.runner import RunConfig, run_suite
from conformance.scenario import REGISTRY

# `fakes` lives in tests/; appended so that the project's own packages always win.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from fakes.harness import explain  # noqa: E402
from fakes.server import PLANTED_KEY, FakeApp, FakeConfig, serve_fake  # noqa: E402

CONTEXT = 512
# The scenarios that need the context window (Context.require_context_length).
CONTEXT_SCENARIOS = ("max_tokens.overflow", "max_tokens.clamp_exact", "max_tokens.prompt_over_context",
                     "max_tokens.context_length_exceeded_behavior")
CONTEXT_IDS = frozenset(rid for name in CONTEXT_SCENARIOS for rid in REGISTRY[name].covers)


@pytest.fixture
def silent_context(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fake still enforces its 512-token window, but /v1/models no longer reports it."""
    entry = FakeApp._model_entry

    def without_context(self: FakeApp, mid: str) -> dict[str, Any]:
        out = dict(entry(self, mid))
        out.pop("context_length", None)
        return out

    monkeypatch.setattr(FakeApp, "_model_entry", without_context)
    yield


def _run(url: str, profile: str, context_length: int | None) -> RunReport:
    return run_suite(RunConfig(base_url=url, api_key=PLANTED_KEY, profile=profile, only=["max_tokens"],
                               context_length=context_length, timeout=10.0, max_examples=2, concurrency=2,
                               report_dir=Path("reports") / "e2e-unused"))


def _profile_applicable(report: RunReport) -> set[str]:
    """Context-dependent ids the profile itself does not rule out (those stay n/a with the profile's reason)."""
    return {r.id for r in report.requirements if r.id in CONTEXT_IDS and not r.message.startswith("profile ")}


def test_context_scenarios_exist() -> None:
    assert {"max_tokens.overflow_rejected", "max_tokens.prompt_exceeds_context"} <= CONTEXT_IDS
    assert all(name in REGISTRY for name in CONTEXT_SCENARIOS)


@pytest.mark.parametrize("profile", ["fireworks", "openai"])
def test_unknown_context_length_is_not_applicable_then_evaluated_when_given(silent_context: None,
                                                                            profile: str) -> None:
    with serve_fake(FakeConfig(profile=profile, api_key=PLANTED_KEY, context_length=CONTEXT)) as url:
        unknown = _run(url, profile, None)
        given = _run(url, profile, CONTEXT)
    assert unknown.target.context_length is None
    by_id = {r.id: r for r in unknown.requirements}
    checked = _profile_applicable(unknown)
    assert checked, "no context-dependent requirement applies under this profile"
    for rid in checked:
        assert by_id[rid].status == Status.NOT_APPLICABLE, explain(unknown, CONTEXT_IDS)
        assert "--context-length" in by_id[rid].message and "context length is unknown" in by_id[rid].message
    # the rest of max_tokens does not need the window and is still checked
    assert by_id["max_tokens.respected"].status == Status.PASS

    assert given.target.context_length == CONTEXT
    got = {r.id: r for r in given.requirements}
    for rid in checked:
        assert got[rid].status == Status.PASS, explain(given, CONTEXT_IDS)
        assert got[rid].evidence and got[rid].evidence[0].exchanges  # requests were made for it
