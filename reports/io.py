"""Reading and writing results.json, validated against `schemas/report.results.json`.

Writing is always strict. Reading is strict with `load_report`; `load_report_compatible` (used by
`conformance diff` and `conformance matrix`, which compare runs of different suite versions by
requirement id) also reads a results.json of another suite version: unknown fields are ignored and
missing non-core fields get defaults, with a note naming the version difference. Only the core must
be there: a `requirements` list of objects with an `id` and a known `status`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from conformance.results import Level, RunReport, Status

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


def _read_json(path: str | Path) -> tuple[Path, Any]:
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        return p, json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportFileError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportFileError(f"{p}: not a readable JSON file: {exc}") from None


def load_report(path: str | Path, *, validate: bool = True) -> RunReport:
    """Read a results.json into a `RunReport`; `ReportFileError` when unreadable or invalid.

    `path` may also be the directory holding results.json.
    """
    p, data = _read_json(path)
    if validate:
        errors = schema_errors(data)
        if errors:
            raise ReportFileError(f"{p}: does not match the results.json schema:\n  {_summarise(errors)}")
    try:
        return RunReport.model_validate(data)
    except ValidationError as exc:
        raise ReportFileError(f"{p}: not a conformance results file: {exc}") from None


def current_suite_version() -> str:
    try:
        from conformance import __version__
    except ImportError:  # pragma: no cover - part of the package
        return "unknown"
    return str(__version__)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def core_problem(data: Any) -> str | None:
    """Why `data` is not a results.json of any suite version (one line), or None when its core is there."""
    if not isinstance(data, dict):
        return f"the top level is a JSON {_type_name(data)}, not an object with a \"requirements\" list"
    reqs = data.get("requirements")
    if not isinstance(reqs, list):
        return "no \"requirements\" list at the top level"
    statuses = {s.value for s in Status}
    for i, r in enumerate(reqs):
        if not isinstance(r, dict):
            return f"requirements[{i}] is a JSON {_type_name(r)}, not an object"
        rid = r.get("id")
        if not isinstance(rid, str) or not rid:
            return f"requirements[{i}] has no \"id\""
        if r.get("status") not in statuses:
            return (f"requirement {rid!r} has status {r.get('status')!r}, "
                    f"not one of {', '.join(sorted(statuses))}")
    return None


def _obj(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with every field the model needs; fields a version may lack get neutral defaults."""
    levels = {lv.value for lv in Level}
    reqs = []
    for r in data["requirements"]:
        r = dict(r)
        r.setdefault("area", r["id"].split(".", 1)[0])
        if r.get("level") not in levels:
            r["level"] = Level.MUST.value
        r.setdefault("statement", "")
        source = _obj(r.get("source"))
        source.setdefault("url", "")
        source.setdefault("quote", "")
        r["source"] = source
        if r.get("expected") not in {s.value for s in Status}:
            r["expected"] = None
        reqs.append(r)
    out = dict(data, requirements=reqs)
    suite = _obj(out.get("suite"))
    suite.setdefault("version", "unknown")
    out["suite"] = suite
    profile = _obj(out.get("profile"))
    profile.setdefault("id", "unknown")
    out["profile"] = profile
    target = _obj(out.get("target"))
    target.setdefault("base_url", "")
    out["target"] = target
    out.setdefault("started_at", "")
    out.setdefault("duration_s", 0.0)
    out["cost"] = _obj(out.get("cost"))
    if out.get("verdict") not in {s.value for s in Status}:
        bad = {Status.FAIL.value, Status.ERROR.value, Status.TIMEOUT.value}
        must_bad = any(r["level"] == Level.MUST.value and r["status"] in bad for r in reqs)
        out["verdict"] = Status.FAIL.value if must_bad else Status.PASS.value
    out["schema_version"] = 1  # the model's own; the file's is named in the note
    return out


def load_report_compatible(path: str | Path) -> tuple[RunReport, list[str]]:
    """Read a results.json of this or another suite version; returns (report, notes).

    A file that matches this version's schema loads as with `load_report` (no notes). One that
    does not, but has the core (a `requirements` list of objects with `id` and a known `status`),
    loads with unknown fields ignored and missing ones defaulted; `notes` then says so, naming the
    file's suite version. Anything else raises `ReportFileError` with a one-line message.
    """
    p, data = _read_json(path)
    problem = core_problem(data)
    if problem:
        raise ReportFileError(f"{p}: not a conformance results.json: {problem}")
    errors = schema_errors(data)
    if not errors:
        return _model(p, data), []
    suite = data.get("suite")
    version = suite.get("version") if isinstance(suite, dict) else None
    here = current_suite_version()
    if version is None:
        origin = f"a results.json without a suite version (this is suite {here})"
    elif str(version) != here:
        origin = f"a results.json of suite version {version} (this is suite {here})"
    else:
        origin = f"a results.json of suite version {version} that does not match its schema"
    if data.get("schema_version", 1) != 1:
        origin += f", schema_version {data.get('schema_version')!r}"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    note = f"{p}: {origin}: read by requirement id (unknown fields ignored, missing ones defaulted); first difference: {errors[0][:200]}{more}"
    return _model(p, _with_defaults(data)), [note]


def _model(p: Path, data: Any) -> RunReport:
    try:
        return RunReport.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "top level"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ReportFileError(f"{p}: not a conformance results.json: {where}: {first['msg']}{more}") from None


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
