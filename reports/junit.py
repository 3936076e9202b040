"""JUnit XML for CI test tabs (GitHub Actions test reporters, GitLab, Jenkins).

One `<testsuite>` per area, one `<testcase classname="<area>" name="<requirement id>">` per
requirement. Mapping of statuses:

- pass -> plain testcase (an *unexpected pass* gets a note in `<system-out>`)
- fail -> `<failure message="[LEVEL] statement — observed">`
- error, timeout -> `<error>`
- skip, not_applicable -> `<skipped message="reason">`
- a failure the expectations file predicted -> `<skipped message="expected failure: ...">`, so CI
  tabs stay green on known gaps and go red on new ones.

The evidence (redacted request/response, pretty-printed, truncated) goes in `<system-out>`; the
run's profile, base URL and model are `<properties>` of every suite.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.results import RequirementResult, RunReport, Status
from reports.common import by_area, evidence_text, is_expected, is_unexpected_pass, observed_text, scrub
from reports.expectations import Expectations

# Characters XML 1.0 does not allow at all, even escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
MESSAGE_LIMIT = 1_000


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


def _message(r: RequirementResult) -> str:
    observed = observed_text(r, MESSAGE_LIMIT)
    text = f"[{r.level.value}] {r.statement}"
    if observed:
        text += f" — observed: {observed}"
    return _clean(text)


def _properties(report: RunReport) -> list[tuple[str, str]]:
    t = report.target
    props = [
        ("profile", report.profile.id),
        ("profile.title", report.profile.title),
        ("base_url", t.base_url),
        ("model", t.model or ""),
        ("chat_model", t.chat_model or ""),
        ("suite.version", report.suite.version),
        ("started_at", report.started_at),
        ("verdict", report.verdict.value),
    ]
    return [(k, scrub(v)) for k, v in props]


def _testcase(parent: ET.Element, r: RequirementResult, expectations: Expectations | None) -> dict[str, int]:
    case = ET.SubElement(parent, "testcase", classname=r.area, name=r.id, time=f"{r.duration_s:.3f}")
    out: list[str] = [f"{r.id} [{r.level.value}] {r.statement}", f"source: {r.source.url}", f'quote: "{r.source.quote}"']
    if r.tests:
        out.append("tests: " + ", ".join(r.tests))
    exp = expectations.get(r.id) if expectations else None
    tally = {"failures": 0, "errors": 0, "skipped": 0}
    if is_expected(r):
        why = exp.reason if exp and exp.reason else ""
        text = f"expected failure ({r.status.value}): {why or _message(r)}"
        if exp and exp.issue:
            text += f" ({exp.issue})"
        ET.SubElement(case, "skipped", message=_clean(scrub(text)[:MESSAGE_LIMIT]))
        tally["skipped"] = 1
    elif r.status == Status.FAIL:
        el = ET.SubElement(case, "failure", message=_message(r), type=f"{r.level.value} requirement not met")
        el.text = _message(r)
        tally["failures"] = 1
    elif r.status in (Status.ERROR, Status.TIMEOUT):
        kind = "timeout" if r.status == Status.TIMEOUT else "endpoint error"
        el = ET.SubElement(case, "error", message=_message(r), type=kind)
        el.text = _message(r)
        tally["errors"] = 1
    elif r.status in (Status.SKIP, Status.NOT_APPLICABLE):
        prefix = "not applicable" if r.status == Status.NOT_APPLICABLE else "skipped"
        reason = r.message or (r.evidence[0].message if r.evidence else "")
        ET.SubElement(case, "skipped", message=_clean(scrub(f"{prefix}: {reason}".rstrip(": "))))
        tally["skipped"] = 1
    if is_unexpected_pass(r):
        note = f"UNEXPECTED PASS: expected {r.expected.value if r.expected else '?'} per the expectations file"
        if exp and exp.issue:
            note += f" ({exp.issue})"
        out.insert(0, note + "; remove the entry.")
    if r.message and r.status == Status.PASS:
        out.append(f"message: {r.message}")
    evidence = evidence_text(r)
    if evidence:
        out += ["", evidence]
    ET.SubElement(case, "system-out").text = _clean(scrub("\n".join(out)))
    return tally


def junit_tree(report: RunReport, expectations: Expectations | None = None) -> ET.ElementTree:
    root = ET.Element("testsuites", name=f"openai-conformance ({report.profile.id})")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for area, results in by_area(report.requirements).items():
        suite = ET.SubElement(root, "testsuite", name=area, timestamp=report.started_at[:19])
        props = ET.SubElement(suite, "properties")
        for name, value in _properties(report):
            ET.SubElement(props, "property", name=name, value=_clean(value))
        tally = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        time = 0.0
        for r in results:
            for k, v in _testcase(suite, r, expectations).items():
                tally[k] += v
            tally["tests"] += 1
            time += r.duration_s
        for k, v in tally.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{time:.3f}")
        total_time += time
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{report.duration_s or total_time:.3f}")
    ET.indent(root)
    return ET.ElementTree(root)


def junit_string(report: RunReport, expectations: Expectations | None = None) -> str:
    root = junit_tree(report, expectations).getroot()
    assert root is not None
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(report: RunReport, path: str | Path, expectations: Expectations | None = None) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(junit_string(report, expectations), encoding="utf-8")
    return p
