"""`conformance run` against the real reference server: exit codes, what results.json says, no key anywhere."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from fakes.harness import BAD
from fakes.runs import CliRun
from fakes.server import PLANTED_KEY

from conformance import schemas
from conformance.cli import main
from conformance.results import Status

# A test's setup may run up to four whole suites (about a minute each on 2 loaded cores).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPORT_FILES = {"results.json", "junit.xml", "report.html", "summary.md"}


def test_embedded_run_exits_0_and_writes_every_report(run_ff: CliRun) -> None:
    assert run_ff.code == 0, run_ff.output[-3000:]
    assert "Traceback" not in run_ff.output
    assert "starting the embedded reference server" in run_ff.stderr
    assert "PASS" in run_ff.stdout
    files = run_ff.files()
    assert set(files) >= REPORT_FILES
    data = json.loads(files["results.json"])
    assert schemas.validate("report.results", data) == []
    assert data["verdict"] == "pass" and data["target"]["embedded"] is True
    assert data["profile"]["id"] == "fireworks"


def test_openai_profile_against_the_fireworks_server_exits_1_and_says_which(run_fo: CliRun) -> None:
    assert run_fo.code == 1, run_fo.output[-3000:]
    assert "Traceback" not in run_fo.output
    files = run_fo.files()
    data = json.loads(files["results.json"])
    assert schemas.validate("report.results", data) == []
    assert data["verdict"] == "fail" and data["target"]["embedded"] is False
    failed = {r["id"]: r for r in data["requirements"] if r["status"] in {s.value for s in BAD}}
    assert {"stop.excluded", "max_tokens.overflow_rejected", "usage.stream_include_usage_chunk",
            "params.presence_penalty.supported"} <= set(failed)
    for rid, r in failed.items():
        assert r["message"], rid
        assert r["evidence"], f"{rid}: no evidence"
        if r["area"] != "sdk":  # client checks carry the SDK's own observations instead of exchanges
            exchanges = [x for e in r["evidence"] for x in e["exchanges"]]
            assert exchanges and all(x["request"] for x in exchanges), rid
        else:
            assert all(e["details"] for e in r["evidence"]), rid
    # the evidence of a documented difference shows it: the stop sequence kept in the text
    assert "contains the stop sequence" in failed["stop.excluded"]["message"]
    assert "got 200" in failed["max_tokens.overflow_rejected"]["message"]
    # the terminal summary names the failing MUST requirements
    musts = [rid for rid, r in failed.items() if r["level"] == "MUST"]
    assert musts and all(rid in run_fo.stdout for rid in musts[:20])
    # junit.xml: one failing testcase per failing requirement
    tree = ET.fromstring(files["junit.xml"])
    junit_failed = {case.get("name") for case in tree.iter("testcase")
                    if case.find("failure") is not None or case.find("error") is not None}
    assert junit_failed == set(failed)


def test_the_server_enforces_the_planted_key(fireworks_server: str) -> None:
    """The runs below are authenticated for real: without the key the server answers 401."""
    with httpx.Client(timeout=30, trust_env=False) as http:
        assert http.get(f"{fireworks_server}/models").status_code == 401
        ok = http.get(f"{fireworks_server}/models", headers={"Authorization": f"Bearer {PLANTED_KEY}"})
        assert ok.status_code == 200


def test_no_output_contains_the_planted_key(run_ff: CliRun, run_fo: CliRun, run_oo: CliRun, run_of: CliRun,
                                            tmp_path: Path) -> None:
    texts: dict[str, str] = {}
    for run in (run_ff, run_fo, run_oo, run_of):
        name = f"{run.server_profile}-server/{run.suite_profile}-profile"
        files = run.files()
        assert set(files) >= REPORT_FILES, name
        texts.update({f"{name}/{path}": text for path, text in files.items()})
        texts[f"{name}/stdout"] = run.stdout
        texts[f"{name}/stderr"] = run.stderr
        assert run.report.cost.requests > 0  # the runs did talk to the server, with the key
    for fmt in ("md", "html", "json"):
        out = tmp_path / f"diff.{fmt}"
        main(["diff", str(run_ff.report_dir / "results.json"), str(run_fo.report_dir / "results.json"),
              "--format", fmt, "--out", str(out)])
        texts[f"diff.{fmt}"] = out.read_text(encoding="utf-8")
    matrix = tmp_path / "matrix"
    assert main(["matrix", *(str(r.report_dir / "results.json") for r in (run_ff, run_fo, run_oo, run_of)),
                 "--out", str(matrix)]) in (0, 1)
    texts.update({f"matrix/{p.name}": p.read_text(encoding="utf-8", errors="replace")
                  for p in matrix.rglob("*") if p.is_file()})
    leaked = [name for name, text in texts.items() if PLANTED_KEY in text or "PLANTED-conformance" in text]
    assert not leaked, f"the planted key appears in {leaked}"
    # the requests were authenticated: the evidence shows the Authorization header, redacted
    assert all('"authorization": "Bearer ***"' in text for name, text in texts.items()
               if name.endswith("results.json"))
    assert run_fo.report.verdict == Status.FAIL
