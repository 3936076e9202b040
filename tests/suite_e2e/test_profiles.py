"""Good fakes pass the matching profile; a fireworks endpoint fails the openai profile where they differ."""

from __future__ import annotations

from fakes.harness import (
    AXIS_DEPENDENT,
    BAD,
    applicable_ids,
    assert_every_applicable_passes,
    explain,
    run,
    statuses,
)

from conformance.catalogue import load_catalogue
from conformance.results import Level, RunReport, Status


def test_good_fireworks_fake_passes_the_fireworks_profile(fireworks_report: RunReport) -> None:
    assert_every_applicable_passes(fireworks_report, "fireworks")
    assert fireworks_report.cost.requests > 0
    assert fireworks_report.target.context_length == 512


def test_good_openai_fake_passes_the_openai_profile(openai_fake: str) -> None:
    assert_every_applicable_passes(run(openai_fake, "openai"), "openai")


def test_fireworks_fake_fails_the_openai_profile_exactly_where_the_profiles_differ(fireworks_fake: str) -> None:
    report = run(fireworks_fake, "openai")
    got = statuses(report)
    catalogue = load_catalogue()
    openai_only = applicable_ids("openai") - applicable_ids("fireworks")
    fireworks_only = applicable_ids("fireworks") - applicable_ids("openai")
    assert openai_only and fireworks_only
    # every requirement that exists only under the openai profile is contradicted by the fake
    missed = {rid for rid in openai_only if got[rid] not in BAD}
    assert not missed, f"not caught:\n{explain(report, missed)}"
    # the fireworks-only ones are not applicable, and nothing outside the differences fails
    assert all(got[rid] == Status.NOT_APPLICABLE for rid in fireworks_only)
    bad = {rid for rid, status in got.items() if status in BAD}
    unexpected = bad - openai_only - AXIS_DEPENDENT
    assert not unexpected, f"failures outside the profile differences:\n{explain(report, unexpected)}"
    assert report.verdict == Status.FAIL
    assert any(catalogue[rid].level == Level.MUST for rid in bad)


def test_openai_fake_fails_the_fireworks_profile_only_where_the_profiles_differ(openai_fake: str) -> None:
    """The reverse direction: not every fireworks-only requirement is contradicted by an openai endpoint
    (an openai endpoint sends no streamed usage at all, so "usage null elsewhere" holds), but every
    failure lies in the differences."""
    report = run(openai_fake, "fireworks")
    got = statuses(report)
    fireworks_only = applicable_ids("fireworks") - applicable_ids("openai")
    bad = {rid for rid, status in got.items() if status in BAD}
    assert {"stop.included", "max_tokens.overflow_clamped", "usage.stream_final_chunk"} <= bad
    unexpected = bad - fireworks_only - AXIS_DEPENDENT
    assert not unexpected, f"failures outside the profile differences:\n{explain(report, unexpected)}"
    assert report.verdict == Status.FAIL
