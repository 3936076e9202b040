"""Self-contained HTML report of one run (`report.html`): header, failures first, then everything.

No scripts and no external resources: the file can be attached to a CI run or mailed as is.
Every requirement has the anchor `#req-<id>` (the failure block for failing ones, the table row
otherwise), which the compatibility matrix links to.
"""

from __future__ import annotations

from pathlib import Path

from conformance.results import RunReport, Status
from reports.common import (
    by_area,
    counts,
    failures_first,
    is_expected,
    is_unexpected_pass,
    render_html,
    target_label,
)
from reports.expectations import Expectations


def verdict_text(report: RunReport) -> str:
    if report.verdict == Status.PASS:
        return "conforms: every applicable MUST requirement passed"
    return "does not conform: at least one applicable MUST requirement did not pass"


def render_report_html(report: RunReport, expectations: Expectations | None = None) -> str:
    failures = failures_first(report.requirements)
    groups = by_area(report.requirements)
    return render_html(
        "report.html.j2",
        report=report,
        label=target_label(report),
        verdict_text=verdict_text(report),
        counts=counts(report.requirements),
        failures=failures,
        new_failures=[r for r in failures if not is_expected(r)],
        known_failures=[r for r in failures if is_expected(r)],
        unexpected_passes=[r for r in report.requirements if is_unexpected_pass(r)],
        groups=groups,
        area_counts={area: counts(rs) for area, rs in groups.items()},
        expectations=expectations.entries if expectations else {},
    )


def write_html(report: RunReport, path: str | Path, expectations: Expectations | None = None) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_report_html(report, expectations), encoding="utf-8")
    return p
