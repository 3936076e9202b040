"""Regression report between two runs: `conformance diff OLD/results.json NEW/results.json`.

Results are matched by requirement id, so runs of different suite versions compare (ids never
change meaning; an id only in one run is "added" or "removed"). Kinds of change:

- `regression`: pass -> fail/error/timeout (exit status 1)
- `fix`: fail/error/timeout -> pass
- `status`: any other status change (pass -> not_applicable, fail -> error, skip -> pass ...)
- `added` / `removed`: the id is only in the new / old run
- `message`: same status, different observed message
- `evidence`: same status and message, but the recorded exchanges differ materially: the request
  method, path or body, or the response status, body or stream events (compared as a digest of each
  exchange with volatile fields left out: ids, `created`, `system_fingerprint`, durations, headers,
  the target's host). Like `message`, never a regression.

Both files are read with `reports.io.load_report_compatible`: a results.json of another suite
version loads (unknown fields ignored, a note on standard error and in the output); a file that is
not a results.json at all exits 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.results import Exchange, RequirementResult, RunReport, Status
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
from reports.io import ReportFileError, load_report_compatible

KINDS = ("regression", "fix", "status", "added", "removed", "message", "evidence")
KIND_TITLES = {
    "regression": "Regressions",
    "fix": "Fixes",
    "status": "Other status changes",
    "added": "New requirements",
    "removed": "Removed requirements",
    "message": "Changed observed message (same status)",
    "evidence": "Changed evidence (same status and message)",
}
# Keys whose values differ between identical runs; left out of the evidence digest at any depth.
VOLATILE_KEYS = frozenset({
    "id", "created", "created_at", "system_fingerprint", "elapsed_s", "duration", "duration_s",
    "duration_ms", "latency", "latency_ms", "request_id", "timestamp",
})


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
    evidence_change: str = ""  # kind "evidence": what differs, e.g. "exchange 1 (POST /v1/completions): HTTP 200 → 500"
    old_evidence: str = ""  # digests of the normalised exchanges (kind "evidence" only)
    new_evidence: str = ""

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
            "evidence_change": self.evidence_change,
            "old_evidence_digest": self.old_evidence,
            "new_evidence_digest": self.new_evidence,
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
    notes: list[str] = field(default_factory=list)  # e.g. a file read from another suite version

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
        """Ids whose status differs (or that exist in one run only); message and evidence changes excluded."""
        return sorted(e.id for e in self.entries if e.kind not in ("message", "evidence"))

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
            "notes": list(self.notes),
        }


def _message(r: RequirementResult) -> str:
    return observed_text(r, 500)


def _normalise(value: Any) -> Any:
    """`value` without volatile keys (at any depth); JSON text inside strings is parsed first."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return _normalise(json.loads(value))
        except ValueError:
            return value
    return value


def _path(url: str) -> str:
    """The url without scheme and host: the host is the target, already compared in the header."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "") if parts.scheme else url


def exchange_view(ex: Exchange) -> dict[str, Any]:
    """The material part of one exchange, normalised: what the evidence digest is made of."""
    resp = ex.response
    return {
        "request": {"method": ex.request.method.upper(), "url": _path(ex.request.url), "body": _normalise(ex.request.body)},
        "response": None if resp is None else {
            "status": resp.status,
            "body": _normalise(resp.body),
            "events": None if resp.events is None else [_normalise(e) for e in resp.events],
        },
        "transport_error": ex.error is not None,  # its text holds timings; whether there was one is material
    }


def _exchanges(r: RequirementResult) -> list[dict[str, Any]]:
    return [exchange_view(ex) for ev in r.evidence for ex in ev.exchanges]


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def evidence_digest(r: RequirementResult) -> str:
    """A short digest of a result's normalised exchanges (see `exchange_view`)."""
    return _digest(_exchanges(r))


def _evidence_change(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> str:
    """What differs between two lists of normalised exchanges, in a few words."""
    changes: list[str] = []
    if len(old) != len(new):
        changes.append(f"{len(old)} → {len(new)} exchange(s)")
    for i, (o, n) in enumerate(zip(old, new, strict=False), 1):
        if o == n:
            continue
        what: list[str] = []
        oq, nq = o["request"], n["request"]
        if (oq["method"], oq["url"]) != (nq["method"], nq["url"]):
            what.append(f"request {oq['method']} {oq['url']} → {nq['method']} {nq['url']}")
        if oq["body"] != nq["body"]:
            what.append("request body changed")
        orsp, nrsp = o["response"], n["response"]
        if (orsp is None) != (nrsp is None):
            what.append("response " + ("now missing" if nrsp is None else "now present"))
        elif orsp is not None and nrsp is not None:
            if orsp["status"] != nrsp["status"]:
                what.append(f"HTTP {orsp['status']} → {nrsp['status']}")
            if orsp["body"] != nrsp["body"]:
                what.append("response body changed")
            if orsp["events"] != nrsp["events"]:
                what.append("stream events changed")
        if o["transport_error"] != n["transport_error"]:
            what.append("transport error " + ("now" if n["transport_error"] else "gone"))
        changes.append(f"exchange {i} ({nq['method']} {nq['url']}): " + ", ".join(what or ["changed"]))
    return "; ".join(changes)


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
            evidence: dict[str, str] = {}
            if kind is None:
                ox, nx = _exchanges(o), _exchanges(n)
                od, nd = _digest(ox), _digest(nx)
                if od != nd:
                    kind = "evidence"
                    evidence = {"evidence_change": _evidence_change(ox, nx), "old_evidence": od, "new_evidence": nd}
            if kind is None:
                unchanged += 1
                continue
            entries.append(DiffEntry(kind=kind, old_status=o.status, new_status=n.status, old_message=om,
                                     new_message=nm, **evidence, **common))
    entries.sort(key=lambda e: (KINDS.index(e.kind), area_rank(e.area), e.id))
    notes = []
    if old.suite.version != new.suite.version:
        notes.append(f"the runs are of different suite versions ({old.suite.version} and {new.suite.version}): "
                     "results are matched by requirement id")
    return Diff(old=RunInfo.of(old), new=RunInfo.of(new), entries=entries, unchanged=unchanged, notes=notes)


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
    if diff.notes:
        for note in diff.notes:
            lines += [f"> **Note:** {md_cell(note)}", ""]
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
            elif kind == "evidence":
                observed = e.evidence_change + (f" (observed: {e.new_message})" if e.new_message else "")
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
        (old, old_notes), (new, new_notes) = load_report_compatible(args.old), load_report_compatible(args.new)
    except ReportFileError as exc:
        print(f"conformance diff: {exc}", file=sys.stderr)
        return 2
    for note in (*old_notes, *new_notes):
        print(f"conformance diff: note: {note}", file=sys.stderr)
    diff = diff_reports(old, new)
    diff.notes = [*old_notes, *new_notes, *diff.notes]
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
