"""Markdown summary of one run, for PR comments and `$GITHUB_STEP_SUMMARY`.

Kept short (GitHub caps a comment at 65,536 characters): verdict line, failures table (new
failures first), unexpected passes, per-area counts, and each failure's first exchange in a
collapsed `<details>` block.
"""

from __future__ import annotations

import re
from pathlib import Path

from conformance.results import RequirementResult, RunReport, Status
from reports.common import (
    STATUS_EMOJI,
    STATUS_LABEL,
    STATUS_ORDER,
    by_area,
    counts,
    failures_first,
    fmt_duration,
    is_expected,
    is_unexpected_pass,
    md_cell,
    md_inline,
    observed_text,
    request_text,
    response_text,
    target_label,
)
from reports.expectations import Expectations

MAX_CHARS = 60_000
DETAIL_LIMIT = 1_500


def badge(status: Status, expected: bool = False) -> str:
    return f"{STATUS_EMOJI[status]} {STATUS_LABEL[status]}" + (" (expected)" if expected else "")


def fence(text: str, lang: str = "") -> str:
    """A fenced code block that the text cannot close early."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _failure_details(r: RequirementResult) -> str:
    ex = next((ex for ev in r.evidence for ex in ev.exchanges), None)
    if ex is None:
        return ""
    body = (
        f"<details><summary><code>{r.id}</code> evidence</summary>\n\n"
        f"**Request**\n\n{fence(request_text(ex, DETAIL_LIMIT))}\n\n"
        f"**Response**\n\n{fence(response_text(ex, DETAIL_LIMIT))}\n\n</details>\n"
    )
    return body


def render_markdown(
    report: RunReport,
    expectations: Expectations | None = None,
    *,
    html_link: str | None = None,
    max_chars: int = MAX_CHARS,
) -> str:
    """The summary as Markdown. `html_link`: URL/path of the full HTML report to point at."""
    c = counts(report.requirements)
    ok = report.verdict == Status.PASS
    lines = [
        f"## {'✅' if ok else '❌'} Conformance: `{md_cell(target_label(report))}` — {report.verdict.value.upper()}",
        "",
        f"Profile **{md_inline(report.profile.id)}** · suite {md_inline(report.suite.version)} · "
        f"{len(report.requirements)} requirements: "
        + ", ".join(f"{n} {STATUS_LABEL[Status(s)]}" for s, n in c.items() if n)
        + f" · {report.cost.requests} requests, {report.cost.total_tokens} tokens · {fmt_duration(report.duration_s)}",
        "",
    ]
    if html_link:
        lines += [f"Full report with request/response evidence: [{md_inline(html_link)}]({html_link})", ""]
    failures = failures_first(report.requirements)
    new = [r for r in failures if not is_expected(r)]
    known = [r for r in failures if is_expected(r)]
    exps = expectations.entries if expectations else {}
    if new:
        lines += [f"### Failures ({len(new)})", "", "| Status | Requirement | Level | Statement | Observed |", "|---|---|---|---|---|"]
        lines += [
            f"| {badge(r.status)} | `{md_cell(r.id)}` | {r.level.value} | {md_cell(r.statement)} | {md_cell(observed_text(r, 300))} |"
            for r in new
        ]
        lines.append("")
    else:
        lines += ["No new failures.", ""]
    if known:
        lines += [f"### Known failures ({len(known)}, from the expectations file)", "", "| Status | Requirement | Level | Reason |", "|---|---|---|---|"]
        for r in known:
            exp = exps.get(r.id)
            reason = md_cell(exp.reason) if exp and exp.reason else ""
            if exp and exp.issue:
                reason += f" ([issue]({exp.issue}))"
            lines.append(f"| {badge(r.status, True)} | `{md_cell(r.id)}` | {r.level.value} | {reason} |")
        lines.append("")
    passes = [r for r in report.requirements if is_unexpected_pass(r)]
    if passes:
        lines += [f"### Unexpected passes ({len(passes)})", "", "Expected to fail but passed; remove them from the expectations file:", ""]
        lines += [f"- `{md_cell(r.id)}` (expected {r.expected.value if r.expected else '?'})" for r in passes]
        lines.append("")
    lines += ["### By area", "", "| Area | " + " | ".join(STATUS_LABEL[s] for s in STATUS_ORDER) + " |",
              "|---|" + "---:|" * len(STATUS_ORDER)]
    for area, results in by_area(report.requirements).items():
        ac = counts(results)
        lines.append(f"| {md_cell(area)} | " + " | ".join(str(ac[s.value] or "") for s in STATUS_ORDER) + " |")
    lines.append("")
    text = "\n".join(lines)
    details = [d for d in (_failure_details(r) for r in new) if d]
    if details:
        extra = "### Evidence\n\n"
        for d in details:
            if len(text) + len(extra) + len(d) > max_chars:
                extra += "_(more evidence in the HTML report)_\n"
                break
            extra += d + "\n"
        text += "\n" + extra
    return text


def write_markdown(
    report: RunReport, path: str | Path, expectations: Expectations | None = None, *, html_link: str | None = "report.html"
) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_markdown(report, expectations, html_link=html_link), encoding="utf-8")
    return p
