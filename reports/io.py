"""Reading and writing results.json, validated against `schemas/report.results.json`."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from conformance.results import RunReport

REPORT_SCHEMA = "report.results"


class ReportFileError(ValueError):
    """A results.json that cannot be read, or a report that does not match its schema."""


def schema_errors(data: Any) -> list[str]:
    """Errors of `data` against the report schema; [] when valid or when the schema module is unavailable."""
    try:
        from conformance import schemas
    except ImportError:  # pragma: no cover - the schema module is part of the package
        return []
    try:
        return schemas.validate(REPORT_SCHEMA, data)
    except KeyError:  # schemas.UnknownSchema: no report schema in this checkout
        return []


def _summarise(errors: list[str], limit: int = 10) -> str:
    more = f"\n  ... and {len(errors) - limit} more" if len(errors) > limit else ""
    return "\n  ".join(errors[:limit]) + more


def load_report(path: str | Path, *, validate: bool = True) -> RunReport:
    """Read a results.json into a `RunReport`; `ReportFileError` when unreadable or invalid.

    `path` may also be the directory holding results.json.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportFileError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportFileError(f"{p}: not a readable JSON file: {exc}") from None
    if validate:
        errors = schema_errors(data)
        if errors:
            raise ReportFileError(f"{p}: does not match the results.json schema:\n  {_summarise(errors)}")
    try:
        return RunReport.model_validate(data)
    except ValidationError as exc:
        raise ReportFileError(f"{p}: not a conformance results file: {exc}") from None


def report_json(report: RunReport) -> dict[str, Any]:
    data: dict[str, Any] = report.model_dump(mode="json")
    return data


def write_results_json(report: RunReport, path: str | Path) -> Path:
    """Validate `report` against the results.json schema, then write it (atomically, UTF-8, indented).

    Raises `ReportFileError` (and writes nothing) when the report does not match the schema.
    """
    data = report_json(report)
    errors = schema_errors(data)
    if errors:
        raise ReportFileError(f"refusing to write {path}: report does not match its schema:\n  {_summarise(errors)}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".results-", suffix=".json", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def write_text(path: str | Path, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p
