"""Regression report between two runs: `conformance diff OLD/results.json NEW/results.json`.

Results are matched by requirement id, so runs of different suite versions compare (ids never
change meaning; an id only in one run is "added" or "removed"). Kinds of change:

- `regression`: pass -> fail/error/timeout (exit status 1)
- `fix`: fail/error/timeout -> pass
- `status`: any other status change (pass -> not_applicable, fail -> error, skip -> pass ...)
- `added` / `removed`: the id is only in the new / old run
- `message`: same status, different observed message (changed evidence)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.results import RequirementResult, RunReport, Status
from reports.common import (
    BAD,
    STATUS_EMOJI,
    STATUS_LABEL,
    area_rank,
    md_cell,
    observed_text,
    render_html,
    target_label,
)
from reports.io import ReportFileError, load_report

KINDS = ("regression", "fix", "status", "added", "removed", "message")
KIND_TITLES = {
    "regression": "Regressions",
    "fix": "Fixes",
    "status": "Other status changes",
    "added": "New requirements",
    "removed": "Removed requirements",
    "message": "Changed evidence (same status)",
}


@dataclass(frozen=True)
class DiffEntry:
    id: str
    kind: str  # one of KINDS
    area: str
    level: str
    statement: str
    old_status: Status | None
    new_status: Status | None
    old_message: str = ""
    new_message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "area": self.area,
            "level": self.level,
            "statement": self.statement,
            "old_status": self.old_status.value if self.old_status else None,
            "new_status": self.new_status.value if self.new_status else None,
            "old_message": self.old_message,
            "new_message": self.new_message,
        }


@dataclass
class RunInfo:
    label: str
    suite_version: str
    profile: str
    base_url: str
    model: str | None
    started_at: str
    verdict: Status

    @classmethod
    def of(cls, report: RunReport) -> RunInfo:
        return cls(
            label=target_label(report),
            suite_version=report.suite.version,
            profile=report.profile.id,
            base_url=report.target.base_url,
            model=report.target.model,
            started_at=report.started_at,
            verdict=report.verdict,
        )


@dataclass
class Diff:
    old: RunInfo
    new: RunInfo
    entries: list[DiffEntry] = field(default_factory=list)
    unchanged: int = 0

    def of_kind(self, kind: str) -> list[DiffEntry]:
        return [e for e in self.entries if e.kind == kind]

    @property
    def regressions(self) -> list[DiffEntry]:
        return self.of_kind("regression")

    @property
    def fixes(self) -> list[DiffEntry]:
        return self.of_kind("fix")

    @property
    def changed_ids(self) -> list[str]:
        """Ids whose status differs (or that exist in one run only); message-only changes excluded."""
        return sorted(e.id for e in self.entries if e.kind != "message")

    def as_dict(self) -> dict[str, Any]:
        def info(i: RunInfo) -> dict[str, Any]:
            return {
                "label": i.label, "suite_version": i.suite_version, "profile": i.profile,
                "base_url": i.base_url, "model": i.model, "started_at": i.started_at, "verdict": i.verdict.value,
            }

        return {
            "old": info(self.old),
            "new": info(self.new),
            "counts": {k: len(self.of_kind(k)) for k in KINDS},
            "unchanged": self.unchanged,
            "regression": bool(self.regressions),
            "changes": [e.as_dict() for e in self.entries],
        }


def _message(r: RequirementResult) -> str:
    return observed_text(r, 500)


def _kind(old: Status, new: Status) -> str | None:
    if old == new:
        return None
    if old == Status.PASS and new in BAD:
        return "regression"
    if old in BAD and new == Status.PASS:
        return "fix"
    return "status"


def diff_reports(old: RunReport, new: RunReport) -> Diff:
    """Every difference between two runs, matched by requirement id."""
    olds = {r.id: r for r in old.requirements}
    news = {r.id: r for r in new.requirements}
    entries: list[DiffEntry] = []
    unchanged = 0
    for rid in [*olds, *(i for i in news if i not in olds)]:
        o, n = olds.get(rid), news.get(rid)
        ref = n or o
        assert ref is not None
        common = {"id": rid, "area": ref.area, "level": ref.level.value, "statement": ref.statement}
        if o is None and n is not None:
            entries.append(DiffEntry(kind="added", old_status=None, new_status=n.status, new_message=_message(n), **common))
        elif n is None and o is not None:
            entries.append(DiffEntry(kind="removed", old_status=o.status, new_status=None, old_message=_message(o), **common))
        elif o is not None and n is not None:
            kind = _kind(o.status, n.status)
            om, nm = _message(o), _message(n)
            if kind is None and om != nm:
                kind = "message"
            if kind is None:
                unchanged += 1
                continue
            entries.append(DiffEntry(kind=kind, old_status=o.status, new_status=n.status, old_message=om, new_message=nm, **common))
    entries.sort(key=lambda e: (KINDS.index(e.kind), area_rank(e.area), e.id))
    return Diff(old=RunInfo.of(old), new=RunInfo.of(new), entries=entries, unchanged=unchanged)


# --- renderers ---------------------------------------------------------------------------------

def _st(s: Status | None) -> str:
    return f"{STATUS_EMOJI[s]} {STATUS_LABEL[s]}" if s else "—"


def render_json(diff: Diff) -> str:
    return json.dumps(diff.as_dict(), indent=2, ensure_ascii=False) + "\n"


def render_md(diff: Diff) -> str:
    head = "❌ regressions" if diff.regressions else "✅ no regressions"
    lines = [
        f"## Conformance diff: {head}",
        "",
        f"- **old**: `{md_cell(diff.old.label)}` (suite {md_cell(diff.old.suite_version)}, {md_cell(diff.old.started_at)}, verdict {diff.old.verdict.value})",
        f"- **new**: `{md_cell(diff.new.label)}` (suite {md_cell(diff.new.suite_version)}, {md_cell(diff.new.started_at)}, verdict {diff.new.verdict.value})",
        "",
        " · ".join(f"{KIND_TITLES[k]}: {len(diff.of_kind(k))}" for k in KINDS) + f" · Unchanged: {diff.unchanged}",
        "",
    ]
    if not diff.entries:
        lines += ["No differences.", ""]
    for kind in KINDS:
        entries = diff.of_kind(kind)
        if not entries:
            continue
        lines += [f"### {KIND_TITLES[kind]} ({len(entries)})", "", "| Requirement | Level | Old | New | Observed (new) |", "|---|---|---|---|---|"]
        for e in entries:
            observed = e.new_message if kind != "removed" else e.old_message
            if kind == "message":
                observed = f"was: {e.old_message} → now: {e.new_message}"
            lines.append(
                f"| `{md_cell(e.id)}` | {e.level} | {_st(e.old_status)} | {_st(e.new_status)} | {md_cell(observed)} |"
            )
        lines.append("")
    return "\n".join(lines)


def render_html_diff(diff: Diff) -> str:
    return render_html("diff.html.j2", diff=diff, kinds=KINDS, titles=KIND_TITLES)


RENDERERS = {"md": render_md, "html": render_html_diff, "json": render_json}


# --- command line ------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`conformance diff OLD NEW [--format md|html|json] [--out FILE]`."""
    parser.add_argument("old", metavar="OLD", help="results.json of the earlier run (or its directory)")
    parser.add_argument("new", metavar="NEW", help="results.json of the later run (or its directory)")
    parser.add_argument("--format", choices=sorted(RENDERERS), default="md", help="output format (default: md)")
    parser.add_argument("--out", metavar="FILE", default=None, help="write here instead of standard output")


def cli(args: argparse.Namespace | list[str] | None = None) -> int:
    """Run `conformance diff`; exit status 1 on regressions, 2 on unreadable input, else 0.

    Reads from the namespace: `old`, `new` (paths), `format` ("md" | "html" | "json", default
    "md"), `out` (path or None for stdout). A list of strings is parsed with `add_arguments`.
    """
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="conformance diff", description=__doc__.splitlines()[0])
        add_arguments(parser)
        args = parser.parse_args(args)
    try:
        old, new = load_report(args.old), load_report(args.new)
    except ReportFileError as exc:
        print(f"conformance diff: {exc}", file=sys.stderr)
        return 2
    diff = diff_reports(old, new)
    text = RENDERERS[getattr(args, "format", None) or "md"](diff)
    out = getattr(args, "out", None)
    if out:
        p = Path(out)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        print(f"wrote {p}: {len(diff.regressions)} regression(s), {len(diff.entries)} change(s)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 1 if diff.regressions else 0
