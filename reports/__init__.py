"""Reports built from a run's `RunReport` (results.json) — never by re-running checks.

Modules (each subcommand module has `add_arguments(parser)` and `cli(namespace) -> int`):

- `reports.io` — `load_report(path)`, `write_results_json(report, path)` (schema-validated).
- `reports.expectations` — known-failure files (web-platform-tests metadata style), `gate(report)`.
- `reports.junit` — `write_junit(report, path)` for CI test tabs (GitHub Actions, GitLab, Jenkins).
- `reports.html` — `write_html(report, path)`: self-contained HTML report, failures first.
- `reports.markdown` — `write_markdown(report, path)` for PR comments and `$GITHUB_STEP_SUMMARY`.
- `reports.diff` — `conformance diff OLD NEW`: regressions, fixes, status changes between two runs.
- `reports.matrix` — `conformance matrix A B ... --out DIR`: requirements x targets.
- `reports.docs` — `conformance docs --out DIR`: the catalogue and the JSON Schemas as documents.

`write_run_outputs(report, out_dir)` writes everything `conformance run` leaves behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conformance.results import RunReport
    from reports.expectations import Expectations

DEFAULT_OUT = Path("reports") / "latest"


def write_run_outputs(
    report: RunReport, out_dir: str | Path, expectations: Expectations | None = None
) -> dict[str, Path]:
    """Write results.json, report.html, junit.xml and summary.md into `out_dir`.

    Apply expectations first (`reports.expectations.apply_expectations`) when there are any; pass
    them here too so the reports can show each known failure's reason and issue link.
    Returns {"results": path, "html": path, "junit": path, "markdown": path}.
    """
    from reports.html import write_html
    from reports.io import write_results_json
    from reports.junit import write_junit
    from reports.markdown import write_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out / "results.json",
        "html": out / "report.html",
        "junit": out / "junit.xml",
        "markdown": out / "summary.md",
    }
    write_results_json(report, paths["results"])
    write_html(report, paths["html"], expectations=expectations)
    write_junit(report, paths["junit"], expectations=expectations)
    write_markdown(report, paths["markdown"], expectations=expectations)
    return paths
