"""Helpers for the suite's end-to-end tests: run the suite in-process against a fake, read the report."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conformance.catalogue import load_catalogue
from conformance.profiles import load_profile
from conformance.results import RunReport, Status
from conformance.runner import RunConfig, run_suite

from .server import PLANTED_KEY

BAD = frozenset({Status.FAIL, Status.ERROR, Status.TIMEOUT})

# Requirements with no applies_when whose check still reads a profile axis (e.g. "keeping or
# dropping the stop per the profile", chunk schemas narrowed by the profile's usage placement):
# an endpoint of the other profile may fail them too.
AXIS_DEPENDENT = frozenset({
    "stop.truncation_point", "stop.mid_token", "stop.repeated", "stop.first_of_many",
    "schema.completion.chunk", "schema.chat.chunk", "usage.stream_matches_non_stream",
    # client checks read the profile's stop and stream-usage axes
    "sdk.python.stop", "sdk.python.stream_usage", "sdk.node.stream_usage", "sdk.legacy.stream_usage",
})
# Areas whose requirements may be skipped for reasons outside the endpoint (e.g. no node for the SDK).
MAY_SKIP_AREAS = frozenset({"sdk"})


def applicable_ids(profile: str) -> set[str]:
    """Requirement ids whose applies_when matches the profile's behaviour axes."""
    behaviour = load_profile(profile).behaviour
    return {rid for rid, req in load_catalogue().items() if req.applies_to(behaviour)[0]}


def statuses(report: RunReport) -> dict[str, Status]:
    return {r.id: r.status for r in report.requirements}


def explain(report: RunReport, ids: Iterable[str] | None = None) -> str:
    """One line per bad requirement (or per id in `ids`), for assertion messages."""
    wanted = set(ids) if ids is not None else None
    lines = []
    for r in report.requirements:
        if (wanted is None and r.status in BAD) or (wanted is not None and r.id in wanted):
            lines.append(f"{r.id}: {r.status.value} {r.message[:300]}")
    return "\n".join(lines)


def assert_every_applicable_passes(report: RunReport, profile: str) -> None:
    """Verdict pass: every requirement that applies under `profile` passes (MAY_SKIP_AREAS may skip),
    every other one is not applicable."""
    got = statuses(report)
    wrong = {rid: got[rid].value for rid in applicable_ids(profile)
             if got[rid] != Status.PASS and not (rid.split(".")[0] in MAY_SKIP_AREAS and got[rid] == Status.SKIP)}
    assert not wrong, f"{profile}: applicable requirements not passing:\n{explain(report, wrong)}"
    assert report.verdict == Status.PASS
    inapplicable = set(load_catalogue()) - applicable_ids(profile)
    assert all(got[rid] == Status.NOT_APPLICABLE for rid in inapplicable)


def run(base_url: str, profile: str, *, only: Iterable[str] = (), timeout: float = 5.0,
        max_examples: int = 2, report_dir: Path | None = None, **extra: Any) -> RunReport:
    """run_suite in-process, authenticated with the planted key."""
    config = RunConfig(base_url=base_url, api_key=PLANTED_KEY, profile=profile, only=list(only),
                       timeout=timeout, max_examples=max_examples, concurrency=4,
                       report_dir=report_dir or Path("reports") / "e2e-unused", **extra)
    return run_suite(config)
