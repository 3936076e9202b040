"""docs/github-actions.yml: valid YAML, and self-consistent: what the diff step reads, an earlier step makes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.results import Status
from reports.io import write_results_json

from .conftest import make_report

WORKFLOW = Path(__file__).resolve().parents[2] / "docs" / "github-actions.yml"


def load() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps() -> list[dict[str, Any]]:
    jobs = load()["jobs"]
    assert list(jobs) == ["conformance"]
    found: list[dict[str, Any]] = jobs["conformance"]["steps"]
    return found


def step(name_part: str) -> tuple[int, dict[str, Any]]:
    matches = [(i, s) for i, s in enumerate(steps()) if name_part in s.get("name", "")]
    assert len(matches) == 1, f"one step named like {name_part!r}, found {len(matches)}"
    return matches[0]


def test_workflow_parses() -> None:
    data = load()
    triggers = data["on"] if "on" in data else data[True]  # YAML 1.1 reads a bare `on` key as True
    assert {"pull_request", "push", "workflow_dispatch"} <= set(triggers)
    assert data["permissions"]["actions"] == "read"  # to list earlier runs and download their artifact
    for s in steps():
        assert ("uses" in s) != ("run" in s), s


def test_baseline_is_downloaded_before_the_diff() -> None:
    all_steps = steps()
    upload = next(s for s in all_steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    find_i, find = step("Find the baseline")
    download_i, download = step("Download the baseline")
    diff_i, diff = step("Regressions against the baseline")
    assert find_i < download_i < diff_i
    assert "gh run list" in find["run"] and "--workflow openai-conformance.yml" in find["run"]
    assert "openai-conformance.yml" in WORKFLOW.read_text(encoding="utf-8").splitlines()[1]  # the "Copy to" name
    assert str(download["uses"]).startswith("actions/download-artifact")
    assert download["with"]["name"] == upload["with"]["name"]  # what earlier runs uploaded
    assert download["with"]["path"] == "baseline"
    assert download["with"]["run-id"] == "${{ steps.baseline.outputs.run_id }}"
    assert "steps.baseline.outputs.run_id != ''" in download["if"] and download["continue-on-error"] is True
    assert upload["with"]["path"] == "reports/latest"  # the artifact holds results.json at its root
    assert "baseline/results.json" in diff["run"]
    for i, s in enumerate(all_steps):  # nothing before the download step reads the baseline
        if i < download_i:
            assert "baseline/" not in str(s.get("run", ""))


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_diff_step_script(tmp_path: Path) -> None:
    """The diff step's shell script: skips without a baseline, exits 1 on a regression."""
    _, diff = step("Regressions against the baseline")
    script = tmp_path / "diff-step.sh"
    script.write_text(diff["run"], encoding="utf-8")
    summary = tmp_path / "summary.md"
    conformance_bin = Path(sys.executable).parent
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary),
           "PATH": f"{conformance_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    if shutil.which("conformance", path=env["PATH"]) is None:
        pytest.skip("the conformance command is not installed beside this Python")

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-e", str(script)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120, check=False)

    write_results_json(make_report(), tmp_path / "reports" / "latest" / "results.json")
    first = run()
    assert first.returncode == 0, first.stderr
    assert "skipping the diff" in first.stdout and "skipping the diff" in summary.read_text()

    write_results_json(make_report({"schema.choice_index": Status.PASS, "stop.included": Status.PASS}),
                       tmp_path / "baseline" / "results.json")
    write_results_json(make_report({"stop.included": Status.FAIL}), tmp_path / "reports" / "latest" / "results.json")
    second = run()
    assert second.returncode == 1, second.stderr  # stop.included and schema.choice_index regressed
    assert "Conformance diff" in summary.read_text() and "stop.included" in summary.read_text()
