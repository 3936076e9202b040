"""Compatibility matrix: requirements x targets, from several runs' results.json.

`conformance matrix A/results.json B/results.json ... --out DIR` writes `DIR/matrix.html` (static,
no external assets) and `DIR/matrix.md`, plus each run's HTML report under `DIR/runs/<n>-<label>/`
(copied from beside its results.json when present, rendered otherwise), so that every cell links to
the evidence (`report.html#req-<id>`) and the directory can be shared as a whole.

Rows are matched by requirement id, so runs of different suite versions share a matrix: each
results.json is read with `reports.io.load_report_compatible` (another version's unknown fields are
ignored, with a note on standard error); a file that is not a results.json exits 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conformance.results import RunReport, Status
from reports.common import (
    BAD,
    STATUS_EMOJI,
    STATUS_LABEL,
    STATUS_ORDER,
    anchor,
    area_rank,
    counts,
    md_cell,
    render_html,
    slug,
    target_host,
    target_label,
)
from reports.html import write_html
from reports.io import ReportFileError, load_report_compatible, write_results_json

DEFAULT_OUT = Path("reports") / "latest" / "matrix"


@dataclass
class Column:
    label: str
    host: str
    model: str
    profile: str
    report: RunReport
    link: str | None = None  # path of the run's report.html, relative to the matrix page

    @property
    def verdict(self) -> Status:
        return self.report.verdict


@dataclass
class Cell:
    status: Status
    expected: bool = False
    message: str = ""
    href: str | None = None


@dataclass
class Row:
    id: str
    area: str
    level: str
    statement: str
    cells: list[Cell | None]  # one per column; None: the run did not report this id

    @property
    def differs(self) -> bool:
        return len({c.status if c else None for c in self.cells}) > 1


@dataclass
class Matrix:
    columns: list[Column]
    rows: list[Row]
    areas: dict[str, list[dict[str, int]]] = field(default_factory=dict)  # area -> per-column status counts

    def rows_by_area(self) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = {}
        for r in self.rows:
            out.setdefault(r.area, []).append(r)
        return out


def build_matrix(reports: list[RunReport], links: list[str | None] | None = None) -> Matrix:
    """The matrix model; `links[i]` is where column i's report.html is (relative to the page)."""
    links = links or [None] * len(reports)
    if len(links) != len(reports):
        raise ValueError("build_matrix: one link per report")
    columns: list[Column] = []
    seen_labels: dict[str, int] = {}
    for rep, link in zip(reports, links, strict=True):
        label = target_label(rep)
        seen_labels[label] = seen_labels.get(label, 0) + 1
        if seen_labels[label] > 1:
            label = f"{label} #{seen_labels[label]}"
        columns.append(Column(
            label=label,
            host=target_host(rep),
            model=rep.target.model or rep.target.chat_model or "?",
            profile=rep.profile.id,
            report=rep,
            link=link,
        ))
    order: dict[str, tuple[str, str, str]] = {}
    for rep in reports:
        for r in rep.requirements:
            order.setdefault(r.id, (r.area, r.level.value, r.statement))
    ids = sorted(order, key=lambda i: area_rank(order[i][0]))  # stable: keeps catalogue order in an area
    by_col = [{r.id: r for r in rep.requirements} for rep in reports]
    rows = []
    for rid in ids:
        area, level, statement = order[rid]
        cells: list[Cell | None] = []
        for col, results in zip(columns, by_col, strict=True):
            res = results.get(rid)
            if res is None:
                cells.append(None)
                continue
            cells.append(Cell(
                status=res.status,
                expected=res.status in BAD and res.expected is not None and res.expected in BAD,
                message=res.message,
                href=f"{col.link}#{anchor(rid)}" if col.link else None,
            ))
        rows.append(Row(rid, area, level, statement, cells))
    areas: dict[str, list[dict[str, int]]] = {}
    for i, rep in enumerate(reports):
        for row in rows:
            areas.setdefault(row.area, [{s.value: 0 for s in STATUS_ORDER} for _ in reports])
        for r in rep.requirements:
            areas[r.area][i][r.status.value] += 1
    return Matrix(columns=columns, rows=rows, areas=areas)


def render_matrix_md(matrix: Matrix) -> str:
    cols = matrix.columns
    lines = ["# Compatibility matrix", "", "Targets:", ""]
    for i, c in enumerate(cols, 1):
        link = f" — [report]({c.link})" if c.link else ""
        lines.append(f"{i}. `{md_cell(c.label)}`: {STATUS_EMOJI[c.verdict]} {c.verdict.value}, "
                     + ", ".join(f"{n} {STATUS_LABEL[Status(s)]}" for s, n in counts(c.report.requirements).items() if n)
                     + link)
    lines += ["", "## Summary by area", "", "| Area | " + " | ".join(f"`{md_cell(c.label)}`" for c in cols) + " |",
              "|---|" + "---|" * len(cols)]
    for area, per_col in matrix.areas.items():
        cells = []
        for ac in per_col:
            parts = [f"{ac[s.value]} {STATUS_EMOJI[s]}" for s in STATUS_ORDER if ac[s.value]]
            cells.append(" ".join(parts) or "—")
        lines.append(f"| {md_cell(area)} | " + " | ".join(cells) + " |")
    lines += ["", "## Requirements", "", "| Requirement | Level | " + " | ".join(f"`{md_cell(c.label)}`" for c in cols) + " |",
              "|---|---|" + "---|" * len(cols)]
    for row in matrix.rows:
        cells = []
        for cell in row.cells:
            if cell is None:
                cells.append("—")
                continue
            text = f"{STATUS_EMOJI[cell.status]} {STATUS_LABEL[cell.status]}" + (" (expected)" if cell.expected else "")
            cells.append(f"[{text}]({cell.href})" if cell.href else text)
        lines.append(f"| `{md_cell(row.id)}` | {row.level} | " + " | ".join(cells) + " |")
    lines += ["", "Legend: " + ", ".join(f"{STATUS_EMOJI[s]} {STATUS_LABEL[s]}" for s in STATUS_ORDER) + ", — not reported.", ""]
    return "\n".join(lines)


def render_matrix_html(matrix: Matrix) -> str:
    return render_html("matrix.html.j2", matrix=matrix, status_order=[s.value for s in STATUS_ORDER], bad={s.value for s in BAD})


def _materialise_runs(reports: list[RunReport], out: Path, sources: list[Path | None]) -> list[str]:
    links = []
    for i, (rep, src) in enumerate(zip(reports, sources, strict=True), 1):
        rel = Path("runs") / f"{i:02d}-{slug(target_label(rep))}"
        run_dir = out / rel
        run_dir.mkdir(parents=True, exist_ok=True)
        html_src = src.parent / "report.html" if src is not None else None
        if html_src is not None and html_src.is_file():
            shutil.copyfile(html_src, run_dir / "report.html")
        else:
            write_html(rep, run_dir / "report.html")
        if src is not None and src.is_file():
            shutil.copyfile(src, run_dir / "results.json")
        else:
            write_results_json(rep, run_dir / "results.json")
        links.append((rel / "report.html").as_posix())
    return links


def write_matrix(
    reports: list[RunReport], out_dir: str | Path, sources: Sequence[str | Path | None] | None = None
) -> dict[str, Path]:
    """Write matrix.html, matrix.md and runs/*/report.html into `out_dir`.

    `sources[i]`: the results.json path report i was loaded from; its sibling report.html is
    copied instead of rendered. Returns {"html": path, "md": path}.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    srcs: list[Path | None] = [Path(s) if s is not None else None for s in (sources or [None] * len(reports))]
    links: list[str | None] = list(_materialise_runs(reports, out, srcs))
    matrix = build_matrix(reports, links)
    paths = {"html": out / "matrix.html", "md": out / "matrix.md"}
    paths["html"].write_text(render_matrix_html(matrix), encoding="utf-8")
    paths["md"].write_text(render_matrix_md(matrix), encoding="utf-8")
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`conformance matrix A/results.json B/results.json ... [--out DIR]`."""
    parser.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files (or run directories), one per target")
    parser.add_argument("--out", metavar="DIR", default=str(DEFAULT_OUT), help=f"output directory (default: {DEFAULT_OUT})")


def cli(args: argparse.Namespace | list[str] | None = None) -> int:
    """Run `conformance matrix`; 0 on success, 2 on unreadable input.

    Reads from the namespace: `results` (list of paths to results.json or run directories),
    `out` (directory, default reports/latest/matrix).
    """
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="conformance matrix", description=__doc__.splitlines()[0])
        add_arguments(parser)
        args = parser.parse_args(args)
    reports, sources = [], []
    for raw in args.results:
        path = Path(raw)
        if path.is_dir():
            path = path / "results.json"
        try:
            report, notes = load_report_compatible(path)
        except ReportFileError as exc:
            print(f"conformance matrix: {exc}", file=sys.stderr)
            return 2
        for note in notes:
            print(f"conformance matrix: note: {note}", file=sys.stderr)
        reports.append(report)
        sources.append(path)
    paths = write_matrix(reports, getattr(args, "out", None) or DEFAULT_OUT, sources)
    print(f"wrote {paths['html']} and {paths['md']} ({len(reports)} targets)")
    return 0
