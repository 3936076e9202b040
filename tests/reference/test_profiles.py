"""The real reference server passes the matching profile and fails the other one exactly where they differ."""

from __future__ import annotations

import pytest
from fakes.harness import (
    AXIS_DEPENDENT,
    BAD,
    applicable_ids,
    assert_every_applicable_passes,
    explain,
    statuses,
)
from fakes.runs import OPENAI_ONLY_BUT_SHARED, CliRun

from conformance.catalogue import load_catalogue
from conformance.results import Level, Status

# A test's setup may run up to four whole suites (about a minute each on 2 loaded cores).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# The documented differences an openai-profile endpoint must be caught on under the fireworks profile.
FIREWORKS_CORE = {
    "stop.included", "max_tokens.overflow_clamped", "max_tokens.clamp_arithmetic", "max_tokens.cleb_truncate",
    "usage.stream_final_chunk",
    *(f"params.{name}.rejected" for name in ("presence_penalty", "frequency_penalty", "best_of", "logit_bias",
                                              "functions")),
}


def _no_traceback(run: CliRun) -> None:
    assert "Traceback" not in run.output, run.output[-3000:]
    # the reference server never breaks an exchange: a requirement it does not meet is a plain fail
    broken = {r.id for r in run.report.requirements if r.status in (Status.ERROR, Status.TIMEOUT)}
    assert not broken, explain(run.report, broken)


@pytest.mark.parametrize("pair", ["ff", "oo"])
def test_matching_profile_passes(pair: str, request: pytest.FixtureRequest) -> None:
    run: CliRun = request.getfixturevalue(f"run_{pair}")
    _no_traceback(run)
    report = run.report
    assert_every_applicable_passes(report, run.suite_profile)
    assert run.code == 0, run.output[-3000:]
    assert report.profile.id == run.suite_profile
    assert report.target.model == "tiny" and report.target.context_length
    assert report.cost.requests > 0


def test_fireworks_server_fails_the_openai_profile_exactly_where_the_profiles_differ(run_fo: CliRun) -> None:
    _no_traceback(run_fo)
    report = run_fo.report
    got = statuses(report)
    openai_only = applicable_ids("openai") - applicable_ids("fireworks")
    fireworks_only = applicable_ids("fireworks") - applicable_ids("openai")
    assert openai_only >= OPENAI_ONLY_BUT_SHARED, "stale OPENAI_ONLY_BUT_SHARED"
    # every documented difference the openai profile claims is contradicted by the fireworks server
    missed = {rid for rid in openai_only - OPENAI_ONLY_BUT_SHARED if got[rid] not in BAD}
    assert not missed, f"not caught:\n{explain(report, missed)}"
    assert all(got[rid] == Status.PASS for rid in OPENAI_ONLY_BUT_SHARED), explain(report, OPENAI_ONLY_BUT_SHARED)
    # the fireworks-only ones are not applicable, and nothing outside the differences fails
    assert all(got[rid] == Status.NOT_APPLICABLE for rid in fireworks_only)
    bad = {rid for rid, status in got.items() if status in BAD}
    unexpected = bad - openai_only - AXIS_DEPENDENT
    assert not unexpected, f"failures outside the profile differences:\n{explain(report, unexpected)}"
    assert report.verdict == Status.FAIL
    assert any(load_catalogue()[rid].level == Level.MUST for rid in bad)
    assert run_fo.code == 1


def test_openai_server_fails_the_fireworks_profile_only_where_the_profiles_differ(run_of: CliRun) -> None:
    """The weaker direction (as for the fakes): an openai endpoint sends no streamed usage without
    include_usage, so e.g. "usage null elsewhere" holds; but the core differences are caught and every
    failure lies in the differences."""
    _no_traceback(run_of)
    report = run_of.report
    got = statuses(report)
    fireworks_only = applicable_ids("fireworks") - applicable_ids("openai")
    openai_only = applicable_ids("openai") - applicable_ids("fireworks")
    assert fireworks_only >= FIREWORKS_CORE
    bad = {rid for rid, status in got.items() if status in BAD}
    missed = FIREWORKS_CORE - bad
    assert not missed, f"not caught:\n{explain(report, missed)}"
    assert all(got[rid] == Status.NOT_APPLICABLE for rid in openai_only)
    unexpected = bad - fireworks_only - AXIS_DEPENDENT
    assert not unexpected, f"failures outside the profile differences:\n{explain(report, unexpected)}"
    assert report.verdict == Status.FAIL
    assert run_of.code == 1
