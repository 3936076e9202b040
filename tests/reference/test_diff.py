"""`conformance diff` on runs of the real reference server lists exactly the differing requirements.

Two readings of "two runs of the reference server with different profiles", both checked:

- each server run with its own profile (fireworks/fireworks vs openai/openai): both pass, so the diff
  is exactly the requirements that apply under one profile only (pass <-> not_applicable), and no
  regression (exit 0);
- one server, the suite's profile switched (fireworks server: fireworks vs openai profile): the diff
  is the requirements whose status changed, the regressions are the pass -> fail ones, exit 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.harness import AXIS_DEPENDENT, BAD, applicable_ids, statuses
from fakes.runs import OPENAI_ONLY_BUT_SHARED, CliRun

from conformance.cli import main
from conformance.results import RunReport, Status
from reports.diff import diff_reports

# A test's setup may run up to four whole suites (about a minute each on 2 loaded cores).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _status_changes(old: RunReport, new: RunReport) -> set[str]:
    a, b = statuses(old), statuses(new)
    return {rid for rid in a.keys() | b.keys() if a.get(rid) != b.get(rid)}


def _diff_cli(old: CliRun, new: CliRun, out: Path, fmt: str = "json") -> tuple[int, str]:
    code = main(["diff", str(old.report_dir / "results.json"), str(new.report_dir / "results.json"),
                 "--format", fmt, "--out", str(out)])
    return code, out.read_text(encoding="utf-8")


def test_diff_of_each_profile_on_its_own_server(run_ff: CliRun, run_oo: CliRun, tmp_path: Path) -> None:
    old, new = run_ff.report, run_oo.report
    changed = _status_changes(old, new)
    profile_differences = applicable_ids("fireworks") ^ applicable_ids("openai")
    assert changed == profile_differences

    diff = diff_reports(old, new)
    assert set(diff.changed_ids) == changed
    assert not diff.regressions and not diff.fixes
    assert {e.id for e in diff.entries if e.kind == "status"} == changed
    for entry in diff.entries:
        if entry.kind == "status":
            assert {entry.old_status, entry.new_status} == {Status.PASS, Status.NOT_APPLICABLE}, entry

    code, text = _diff_cli(run_ff, run_oo, tmp_path / "diff.json")
    assert code == 0
    data = json.loads(text)
    assert {c["id"] for c in data["changes"] if c["kind"] not in ("message", "evidence")} == changed
    assert data["regression"] is False
    assert (data["old"]["profile"], data["new"]["profile"]) == ("fireworks", "openai")


def test_diff_after_switching_the_profile_lists_the_regressions(run_ff: CliRun, run_fo: CliRun,
                                                                 tmp_path: Path) -> None:
    old, new = run_ff.report, run_fo.report
    changed = _status_changes(old, new)
    # sanity: what changed is the profile differences, plus axis-dependent requirements that fail
    profile_differences = applicable_ids("fireworks") ^ applicable_ids("openai")
    assert profile_differences - OPENAI_ONLY_BUT_SHARED <= changed
    assert changed <= profile_differences | AXIS_DEPENDENT

    diff = diff_reports(old, new)
    assert set(diff.changed_ids) == changed
    was, now = statuses(old), statuses(new)
    regressions = {rid for rid in changed if was[rid] == Status.PASS and now[rid] in BAD}
    assert regressions, "switching the profile must regress the axis-dependent checks"
    assert {e.id for e in diff.regressions} == regressions
    assert regressions <= AXIS_DEPENDENT
    assert not diff.fixes

    code, text = _diff_cli(run_ff, run_fo, tmp_path / "diff.json")
    assert code == 1
    data = json.loads(text)
    assert {c["id"] for c in data["changes"] if c["kind"] not in ("message", "evidence")} == changed
    assert {c["id"] for c in data["changes"] if c["kind"] == "regression"} == regressions

    code, md = _diff_cli(run_ff, run_fo, tmp_path / "diff.md", "md")
    assert code == 1
    assert "❌ regressions" in md
    assert all(f"`{rid}`" in md for rid in changed)
