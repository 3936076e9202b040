"""Report outputs built from synthetic RunReports: JUnit, HTML, Markdown, diff, matrix, expectations, io."""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.results import Level, RunReport, Status
from reports import write_run_outputs
from reports.diff import cli as diff_cli
from reports.diff import diff_reports, render_html_diff, render_json, render_md
from reports.expectations import (
    ExpectationsError,
    apply_expectations,
    gate,
    load_expectations,
    parse_expectations,
)
from reports.html import render_report_html
from reports.io import ReportFileError, load_report, load_report_compatible, write_results_json
from reports.junit import junit_string, write_junit
from reports.markdown import render_markdown
from reports.matrix import build_matrix, write_matrix
from reports.matrix import cli as matrix_cli

from .conftest import PLANTED_KEY, ROWS, SCRIPT_BODY, exchange, make_report, make_result

BAD = {"fail", "error", "timeout"}


# --- io ----------------------------------------------------------------------------------------

def test_results_json_round_trip(tmp_path: Path) -> None:
    report = make_report()
    path = write_results_json(report, tmp_path / "out" / "results.json")
    assert load_report(path) == report
    assert load_report(tmp_path / "out") == report  # a run directory works too


def test_invalid_results_json_is_rejected(tmp_path: Path) -> None:
    data = make_report().model_dump(mode="json")
    data["requirements"][0]["status"] = "maybe"
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ReportFileError, match="schema"):
        load_report(bad)
    with pytest.raises(ReportFileError, match="no such file"):
        load_report(tmp_path / "missing.json")


def _other_version(report: RunReport, version: str = "9.9.0") -> dict[str, Any]:
    """results.json of another suite version: extra fields at several depths, one field gone."""
    data: dict[str, Any] = report.model_dump(mode="json")
    data["suite"]["version"] = version
    data["schema_version"] = 2
    data["attestation"] = {"signed_by": "ci"}
    data["target"]["region"] = "eu-west-1"
    data["requirements"][0]["weight"] = 3
    data["requirements"][1]["evidence"][0]["exchanges"][0]["response"]["ttfb_s"] = 0.05
    del data["observed"]
    return data


def test_results_json_of_another_version_loads_compatibly(tmp_path: Path) -> None:
    report = make_report()
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_other_version(report)))
    with pytest.raises(ReportFileError, match="Additional properties"):
        load_report(path)  # strict reading is unchanged
    loaded, notes = load_report_compatible(path)
    assert [r.id for r in loaded.requirements] == [r.id for r in report.requirements]
    assert [r.status for r in loaded.requirements] == [r.status for r in report.requirements]
    assert loaded.requirements[1].evidence == report.requirements[1].evidence
    assert len(notes) == 1 and "suite version 9.9.0" in notes[0] and "this is suite" in notes[0]
    assert "schema_version 2" in notes[0]
    # a file of the current schema loads without notes
    assert load_report_compatible(write_results_json(report, tmp_path / "ok" / "results.json")) == (report, [])
    # only the core: requirements with id and status; the rest gets defaults
    minimal = tmp_path / "minimal.json"
    minimal.write_text(json.dumps({"suite": {"version": "0.0.1"},
                                   "requirements": [{"id": "stop.included", "status": "fail"}]}))
    loaded, notes = load_report_compatible(minimal)
    assert loaded.requirements[0].area == "stop" and loaded.verdict == Status.FAIL and "0.0.1" in notes[0]
    # writing stays strict: what was read is written back in the current schema
    assert load_report(write_results_json(loaded, tmp_path / "rewritten" / "results.json")) == loaded


@pytest.mark.parametrize(("content", "reason"), [
    ("[1, 2]", "top level is a JSON array"),
    ('{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}', 'no "requirements" list'),
    ('{"requirements": [{"status": "pass"}]}', 'requirements[0] has no "id"'),
    ('{"requirements": [{"id": "a.b", "status": "maybe"}]}', "status 'maybe'"),
    ('{"requirements": [{"id": "a.b", "status": "pass", "tests": [1]}]}', "requirements.0.tests.0"),
    ("not json", "not a readable JSON file"),
])
def test_not_a_results_json_is_rejected_in_one_line(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ReportFileError) as info:
        load_report_compatible(path)
    assert reason in str(info.value) and "\n" not in str(info.value)


# --- junit -------------------------------------------------------------------------------------

def test_junit_one_testcase_per_requirement(tmp_path: Path) -> None:
    report = make_report()
    root = ET.parse(write_junit(report, tmp_path / "junit.xml")).getroot()
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert sorted(c.get("name") or "" for c in cases) == sorted(r.id for r in report.requirements)
    assert {c.get("name"): c.get("classname") for c in cases} == {r.id: r.area for r in report.requirements}
    assert {s.get("name") for s in root.findall("testsuite")} == {r.area for r in report.requirements}
    by_id = {c.get("name"): c for c in cases}

    failure = by_id["schema.choice_index"].find("failure")
    assert failure is not None
    assert "The endpoint MUST satisfy schema.choice_index." in failure.get("message", "")
    assert "choices[1].index is 0; expected 1" in failure.get("message", "")
    out = by_id["schema.choice_index"].findtext("system-out") or ""
    assert "EVIDENCE-TEXT-first" in out and "POST http://127.0.0.1:8000/v1/completions" in out

    assert by_id["usage.total"].find("error") is not None
    assert by_id["stream.done_marker"].find("error") is not None
    assert "timeout" in (by_id["stream.done_marker"].find("error").get("type") or "")  # type: ignore[union-attr]
    skipped = by_id["stop.excluded"].find("skipped")
    assert skipped is not None and "not applicable: profile has stop.output" in skipped.get("message", "")
    assert by_id["errors.invalid_json"].find("skipped") is not None
    assert by_id["stop.included"].find("failure") is None and by_id["stop.included"].find("skipped") is None

    assert root.get("tests") == str(len(ROWS)) and root.get("failures") == "2" and root.get("errors") == "2"
    assert root.get("skipped") == "2"
    props = {p.get("name"): p.get("value") for p in root.find("testsuite").findall("properties/property")}  # type: ignore[union-attr]
    assert props["profile"] == "fireworks" and props["base_url"] == "http://127.0.0.1:8000/v1" and props["model"] == "tiny-gpt"


def test_junit_expected_failure_is_skipped_and_escapes(tmp_path: Path) -> None:
    exp = parse_expectations({"expectations": {"schema.choice_index": {
        "status": "fail", "reason": "index bug <b>", "issue": "https://example.com/i/1"}}})
    report = apply_expectations(make_report(), exp)
    text = junit_string(report, exp)
    root = ET.fromstring(text)
    case = next(c for c in root.iter("testcase") if c.get("name") == "schema.choice_index")
    assert case.find("failure") is None
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("message", "").startswith("expected failure (fail): index bug <b>")
    assert SCRIPT_BODY in "".join(root.itertext()) or "alert(" in text  # body text kept, escaped by the serializer
    assert "<script>" not in text


def test_junit_survives_control_characters() -> None:
    report = make_report(messages={"schema.choice_index": "bad byte \x00\x1b here"})
    ET.fromstring(junit_string(report))  # parses: illegal XML characters were replaced


# --- html / markdown ---------------------------------------------------------------------------

def test_html_report_escapes_and_puts_failures_first() -> None:
    html = render_report_html(make_report())
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in html
    failures, _, rest = html.partition('id="all"')
    for rid, _area, _lvl, status, _msg in ROWS:
        if status.value in BAD:
            assert f'id="req-{rid}"' in failures
        else:
            assert f'id="req-{rid}"' in rest
    assert failures.index("schema.choice_index") < failures.index("stream.usage_final_chunk")  # MUST before SHOULD
    assert "observed behaviour" in html.lower() and "include_usage" in html
    assert "42" in html and "1234" in html  # requests, tokens
    assert "https://platform.openai.com/docs/api-reference/completions" in html


def test_markdown_summary() -> None:
    exp = parse_expectations({"expectations": {"usage.total": {"status": "error", "reason": "500 | known"},
                                               "stop.included": "fail"}})
    md = render_markdown(apply_expectations(make_report(), exp), exp)
    assert "### Failures (3)" in md
    assert "### Known failures (1" in md and "500 \\| known" in md
    assert "### Unexpected passes (1)" in md and "`stop.included`" in md
    assert "<script>" not in md.split("```")[0]


def test_no_planted_key_in_any_output(tmp_path: Path) -> None:
    report = make_report()
    ex = exchange({"ok": False})
    ex.request.headers["authorization"] = f"Bearer {PLANTED_KEY}"
    assert ex.response is not None
    ex.response.body = {"echo": PLANTED_KEY}
    report.requirements[1].evidence[0].exchanges.append(ex)
    run = tmp_path / "run"
    paths = write_run_outputs(report, run)
    write_matrix([report], tmp_path / "matrix", [paths["results"]])
    for path in [*paths.values(), *(tmp_path / "matrix").rglob("*")]:
        if path.is_file() and path.name != "results.json":  # results.json is the client's redaction job
            assert PLANTED_KEY not in path.read_text(encoding="utf-8"), path


# --- expectations / gate -----------------------------------------------------------------------

def test_gate_without_expectations_fails_on_must_failures() -> None:
    result = gate(make_report())
    assert not result.ok
    assert sorted(r.id for r in result.unexpected_failures) == ["schema.choice_index", "stream.done_marker", "usage.total"]
    assert [r.id for r in result.other_failures] == ["stream.usage_final_chunk"]


def test_gate_with_expectations(tmp_path: Path) -> None:
    path = tmp_path / "expectations.yaml"
    path.write_text(
        "profile: fireworks\n"
        "expectations:\n"
        "  schema.choice_index: {status: fail, reason: known, issue: 'https://example.com/1'}\n"
        "  stream.done_marker: {status: timeout}\n"
        "  usage.total: {status: fail}\n"          # now an error: still known, listed as changed
        "  stop.included: {status: fail}\n"        # passes now: unexpected pass
        "  gone.requirement: {status: fail}\n"
    )
    exp = load_expectations(path)
    report = apply_expectations(make_report(), exp)
    assert {r.id: r.expected for r in report.requirements if r.expected} == {
        "schema.choice_index": Status.FAIL, "stream.done_marker": Status.TIMEOUT,
        "usage.total": Status.FAIL, "stop.included": Status.FAIL}
    result = gate(report)
    assert result.ok, result.summary()
    assert [r.id for r in result.unexpected_passes] == ["stop.included"]
    assert [r.id for r in result.changed_failures] == ["usage.total"]
    assert gate(make_report(), exp).unmatched_expectations == ["gone.requirement"]
    assert not gate(report, fail_on_unexpected_pass=True).ok
    assert "unexpected pass" in result.summary()

    # a new MUST failure on top of the known ones fails the gate
    worse = apply_expectations(make_report({"params.best_of_rejected": Status.FAIL}), exp)
    assert [r.id for r in gate(worse).unexpected_failures] == ["params.best_of_rejected"]


def test_expectations_errors() -> None:
    with pytest.raises(ExpectationsError, match="status"):
        parse_expectations({"expectations": {"a.b": {"status": "broken"}}})
    with pytest.raises(ExpectationsError, match="profile"):
        apply_expectations(make_report(), parse_expectations({"profile": "openai", "expectations": {}}))


# --- diff --------------------------------------------------------------------------------------

def _pair() -> tuple:
    old = make_report(messages={"stream.usage_final_chunk": "usage missing"})
    new = make_report(
        {"stop.included": Status.FAIL, "schema.choice_index": Status.PASS, "stop.excluded": Status.PASS},
        profile="openai",
        drop=("logprobs.top_logprobs",),
        extra=(("echo.prompt", "echo", Level.SHOULD, Status.PASS, ""),),
        messages={"stream.usage_final_chunk": "usage on a separate chunk"},
    )
    return old, new


def test_diff_lists_exactly_the_differing_ids() -> None:
    old, new = _pair()
    diff = diff_reports(old, new)
    kinds = {e.id: e.kind for e in diff.entries}
    assert kinds == {
        "stop.included": "regression",
        "schema.choice_index": "fix",
        "stop.excluded": "status",
        "logprobs.top_logprobs": "removed",
        "echo.prompt": "added",
        "stream.usage_final_chunk": "message",
    }
    assert diff.changed_ids == sorted(set(kinds) - {"stream.usage_final_chunk"})
    assert diff.unchanged == len(ROWS) - 5
    assert diff_reports(old, old).entries == []
    md = render_md(diff)
    assert all(rid in md for rid in kinds)
    assert json.loads(render_json(diff))["counts"]["regression"] == 1
    assert "stop.included" in render_html_diff(diff)


def test_diff_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = _pair()
    a = write_results_json(old, tmp_path / "a" / "results.json")
    b = write_results_json(new, tmp_path / "b" / "results.json")
    assert diff_cli([str(a), str(b)]) == 1
    assert "stop.included" in capsys.readouterr().out
    assert diff_cli([str(b), str(a)]) == 1  # reversed: schema.choice_index regresses
    assert diff_cli([str(a), str(a)]) == 0
    ns = argparse.Namespace(old=str(a), new=str(b), format="json", out=str(tmp_path / "d.json"))
    assert diff_cli(ns) == 1
    assert json.loads((tmp_path / "d.json").read_text())["regression"] is True
    assert diff_cli([str(a), str(tmp_path / "nope.json")]) == 2
    for fmt in ("md", "html"):
        assert diff_cli([str(a), str(b), "--format", fmt, "--out", str(tmp_path / f"d.{fmt}")]) == 1


def test_diff_and_matrix_across_suite_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = _pair()
    a = tmp_path / "a" / "results.json"
    a.parent.mkdir()
    a.write_text(json.dumps(_other_version(old, "0.0.9")))
    b = write_results_json(new, tmp_path / "b" / "results.json")
    assert diff_cli([str(a), str(b), "--format", "json"]) == 1  # stop.included regressed: compared by id
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert {c["id"]: c["kind"] for c in out["changes"]}["stop.included"] == "regression"
    assert out["counts"]["evidence"] == 0 and out["unchanged"] == len(ROWS) - 5
    assert "note:" in captured.err and "suite version 0.0.9" in captured.err
    assert any("0.0.9" in n for n in out["notes"])
    assert diff_cli([str(a), str(a)]) == 0
    assert "0.0.9" in capsys.readouterr().out  # the Markdown names the version difference too
    out_dir = tmp_path / "matrix"
    assert matrix_cli(argparse.Namespace(results=[str(a), str(b)], out=str(out_dir))) == 0
    assert "suite version 0.0.9" in capsys.readouterr().err
    assert "stop.included" in (out_dir / "matrix.html").read_text(encoding="utf-8")
    # not a results.json at all: exit 2, one line naming the file
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object", "properties": {}}')
    for cli, argv in ((diff_cli, [str(schema), str(b)]),
                      (matrix_cli, argparse.Namespace(results=[str(b), str(schema)], out=str(out_dir)))):
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and str(schema) in err and "not a conformance results.json" in err


def _with_exchange(report: RunReport, rid: str, body: Any, status: int = 200) -> None:
    """Replace the first exchange of `rid`'s evidence with one answering `body` with HTTP `status`."""
    for i, r in enumerate(report.requirements):
        if r.id == rid:
            result = make_result(r.id, r.area, r.level, r.status, r.message)
            result.evidence[0].exchanges[0] = exchange(body, status)
            report.requirements[i] = result


def test_diff_reports_changed_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    choice = {"index": 0, "text": "hi", "finish_reason": "stop"}
    body: dict[str, Any] = {"id": "cmpl-1", "object": "text_completion", "created": 1700000000,
                            "system_fingerprint": "fp_1", "choices": [choice]}
    old, new = make_report(), make_report()
    _with_exchange(old, "stop.included", body=body)
    _with_exchange(new, "stop.included", body=body, status=201)  # status code changed
    _with_exchange(old, "logprobs.top_logprobs", body=body)
    _with_exchange(new, "logprobs.top_logprobs", body={**body, "choices": [{**choice, "text": "bye"}]})
    volatile = {**body, "id": "cmpl-2", "created": 1800000000, "system_fingerprint": "fp_2"}
    _with_exchange(old, "params.best_of_rejected", body=body)
    _with_exchange(new, "params.best_of_rejected", body=volatile)  # only volatile fields differ
    response = new.requirements[0].evidence[0].exchanges[0].response
    assert response is not None
    response.elapsed_s = 9.0  # durations are volatile
    new.requirements[0].duration_s = 7.0

    diff = diff_reports(old, new)
    kinds = {e.id: e.kind for e in diff.entries}
    assert kinds == {"stop.included": "evidence", "logprobs.top_logprobs": "evidence"}
    assert not diff.regressions and diff.changed_ids == []
    by_id = {e.id: e for e in diff.entries}
    assert by_id["stop.included"].evidence_change == "exchange 1 (POST /v1/completions): HTTP 200 → 201"
    assert "response body changed" in by_id["logprobs.top_logprobs"].evidence_change
    assert "HTTP" not in by_id["logprobs.top_logprobs"].evidence_change
    assert by_id["stop.included"].old_evidence != by_id["stop.included"].new_evidence

    md = render_md(diff)
    assert "### Changed evidence (same status and message) (2)" in md and "HTTP 200 → 201" in md
    html = render_html_diff(diff)
    assert 'id="evidence"' in html and "HTTP 200 → 201" in html
    data = json.loads(render_json(diff))
    assert data["counts"]["evidence"] == 2 and data["regression"] is False
    assert {c["id"]: c["evidence_change"] for c in data["changes"]}["stop.included"].endswith("HTTP 200 → 201")

    a = write_results_json(old, tmp_path / "a" / "results.json")
    b = write_results_json(new, tmp_path / "b" / "results.json")
    assert diff_cli([str(a), str(b)]) == 0  # changed evidence is not a regression
    assert "Changed evidence" in capsys.readouterr().out
    # a changed message takes precedence: one entry per id, kind "message"
    _with_exchange(new, "schema.choice_index", body=body)
    new.requirements[1].message = "choices[1].index is 3"
    assert {e.id: e.kind for e in diff_reports(old, new).entries}["schema.choice_index"] == "message"


# --- matrix ------------------------------------------------------------------------------------

def test_matrix_contains_every_requirement_and_target(tmp_path: Path) -> None:
    old, new = _pair()
    third = make_report(base_url="https://api.fireworks.ai/inference/v1", model="llama-v3")
    run_a = tmp_path / "a"
    paths = write_run_outputs(old, run_a)  # has report.html beside results.json: copied
    b = write_results_json(new, tmp_path / "b" / "results.json")  # no report.html: rendered
    c = write_results_json(third, tmp_path / "c" / "results.json")
    out = tmp_path / "matrix"
    assert matrix_cli(argparse.Namespace(results=[str(paths["results"]), str(b.parent), str(c)], out=str(out))) == 0
    html = (out / "matrix.html").read_text(encoding="utf-8")
    md = (out / "matrix.md").read_text(encoding="utf-8")
    ids = {r.id for rep in (old, new, third) for r in rep.requirements}
    labels = ["127.0.0.1:8000 / tiny-gpt / fireworks", "127.0.0.1:8000 / tiny-gpt / openai",
              "api.fireworks.ai / llama-v3 / fireworks"]
    for text in (html, md):
        assert all(rid in text for rid in ids)
        assert all(label in text for label in labels)
    runs = sorted(p.relative_to(out).as_posix() for p in out.glob("runs/*/report.html"))
    assert len(runs) == 3
    assert (out / runs[0]).read_text() == paths["html"].read_text()  # copied, not re-rendered
    assert f'href="{runs[1]}#req-stop.included"' in html
    assert f"({runs[2]}#req-schema.choice_index)" in md
    for run in runs:  # every anchor a cell links to exists in that run's report
        report_html = (out / run).read_text()
        for anchor in {part.split('"')[0] for part in html.split(f'href="{run}#')[1:]}:
            assert f'id="{anchor}"' in report_html
    assert "Summary by area" in html and "<script src" not in html and "http-equiv" not in html


def test_matrix_model_marks_missing_and_differing() -> None:
    old, new = _pair()
    m = build_matrix([old, new])
    rows = {r.id: r for r in m.rows}
    assert rows["echo.prompt"].cells[0] is None and rows["logprobs.top_logprobs"].cells[1] is None
    assert rows["stop.included"].differs and not rows["params.best_of_rejected"].differs
    assert m.areas["stop"][0]["pass"] == 1 and m.areas["stop"][1]["fail"] == 1
