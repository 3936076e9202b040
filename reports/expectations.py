"""Expectations files: known failures of one provider, kept outside the tests.

Modelled on web-platform-tests metadata: the tests stay the same for everyone, and a provider
keeps a file saying which requirements it is known not to meet yet::

    profile: fireworks                # optional: refuse to apply to a run of another profile
    expectations:
      stop.included:
        status: fail                  # fail | error | timeout | skip | not_applicable | pass
        reason: "stop word dropped when it spans two tokens"
        issue: https://github.com/acme/inference/issues/123

`apply_expectations(report, expectations)` sets `expected` on each result; `gate(report)` says
whether CI should pass: no *new* failure of a MUST requirement. A known failure that starts passing
is an "unexpected pass" — listed so the entry can be removed, fatal only with
`fail_on_unexpected_pass=True`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conformance.results import Level, RequirementResult, RunReport, Status
from reports.common import BAD


class ExpectationsError(ValueError):
    pass


@dataclass(frozen=True)
class Expectation:
    status: Status
    reason: str = ""
    issue: str = ""


@dataclass(frozen=True)
class Expectations:
    entries: dict[str, Expectation] = field(default_factory=dict)
    profile: str | None = None
    path: str = ""

    def get(self, requirement_id: str) -> Expectation | None:
        return self.entries.get(requirement_id)


def parse_expectations(data: Any, path: str = "<expectations>") -> Expectations:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ExpectationsError(f"{path}: expected a mapping with an 'expectations' key")
    unknown = set(data) - {"profile", "expectations"}
    if unknown:
        raise ExpectationsError(f"{path}: unknown keys {sorted(unknown)} (allowed: profile, expectations)")
    raw = data.get("expectations") or {}
    if not isinstance(raw, dict):
        raise ExpectationsError(f"{path}: 'expectations' must map requirement ids to {{status, reason, issue}}")
    entries: dict[str, Expectation] = {}
    allowed = ", ".join(s.value for s in Status)
    for rid, spec in raw.items():
        if isinstance(spec, str):  # shorthand: `stop.included: fail`
            spec = {"status": spec}
        if not isinstance(spec, dict) or "status" not in spec:
            raise ExpectationsError(f"{path}: {rid}: needs at least 'status' ({allowed})")
        extra = set(spec) - {"status", "reason", "issue"}
        if extra:
            raise ExpectationsError(f"{path}: {rid}: unknown keys {sorted(extra)} (allowed: status, reason, issue)")
        try:
            status = Status(str(spec["status"]).lower())
        except ValueError:
            raise ExpectationsError(f"{path}: {rid}: status {spec['status']!r} is not one of {allowed}") from None
        entries[str(rid)] = Expectation(status, str(spec.get("reason") or ""), str(spec.get("issue") or ""))
    profile = data.get("profile")
    return Expectations(entries=entries, profile=str(profile) if profile is not None else None, path=path)


def load_expectations(path: str | Path) -> Expectations:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExpectationsError(f"{p}: no such expectations file") from None
    except yaml.YAMLError as exc:
        raise ExpectationsError(f"{p}: not valid YAML: {exc}") from None
    return parse_expectations(data, str(p))


def apply_expectations(report: RunReport, expectations: Expectations | None) -> RunReport:
    """A copy of `report` with `expected` set on every result the file mentions (others: None).

    Raises `ExpectationsError` when the file names a profile other than the run's.
    """
    if expectations is None:
        return report
    if expectations.profile is not None and expectations.profile != report.profile.id:
        raise ExpectationsError(
            f"{expectations.path}: expectations are for profile {expectations.profile!r}, "
            f"but the run used profile {report.profile.id!r}"
        )
    results = []
    for r in report.requirements:
        exp = expectations.get(r.id)
        results.append(r.model_copy(update={"expected": exp.status if exp else None}))
    return report.model_copy(update={"requirements": results})


@dataclass
class GateResult:
    """Whether CI should pass, and why.

    - `unexpected_failures`: MUST requirements that fail/error/time out and were not expected to
      (the only thing that fails the gate, plus unexpected passes when `fail_on_unexpected_pass`).
    - `unexpected_passes`: expected to fail, now pass — remove them from the expectations file.
    - `expected_failures`: known failures (status fail/error/timeout and expected to be bad).
    - `changed_failures`: known failures whose status differs from the expected one (fail -> error ...).
    - `other_failures`: SHOULD/MAY requirements that fail unexpectedly (reported, not fatal).
    - `unmatched_expectations`: ids in the expectations file that the run did not report.
    """

    ok: bool
    unexpected_failures: list[RequirementResult] = field(default_factory=list)
    unexpected_passes: list[RequirementResult] = field(default_factory=list)
    expected_failures: list[RequirementResult] = field(default_factory=list)
    changed_failures: list[RequirementResult] = field(default_factory=list)
    other_failures: list[RequirementResult] = field(default_factory=list)
    unmatched_expectations: list[str] = field(default_factory=list)
    fail_on_unexpected_pass: bool = False

    def summary(self) -> str:
        """One paragraph for the console / a CI log."""
        lines = [f"gate: {'PASS' if self.ok else 'FAIL'}"]
        if self.unexpected_failures:
            lines.append(f"  {len(self.unexpected_failures)} new MUST failure(s):")
            lines += [f"    {r.id} [{r.status.value}] {r.message}".rstrip() for r in self.unexpected_failures]
        if self.unexpected_passes:
            fatal = " (fatal)" if self.fail_on_unexpected_pass else ""
            lines.append(f"  {len(self.unexpected_passes)} unexpected pass(es){fatal}; remove from the expectations file:")
            lines += [f"    {r.id} (expected {r.expected.value if r.expected else '?'})" for r in self.unexpected_passes]
        if self.expected_failures:
            lines.append(f"  {len(self.expected_failures)} known failure(s) ignored")
        if self.changed_failures:
            lines.append("  known failures with a different status: " + ", ".join(
                f"{r.id} (expected {r.expected.value if r.expected else '?'}, got {r.status.value})"
                for r in self.changed_failures))
        if self.other_failures:
            lines.append(f"  {len(self.other_failures)} SHOULD/MAY failure(s) (not fatal): "
                         + ", ".join(r.id for r in self.other_failures))
        if self.unmatched_expectations:
            lines.append("  expectations for ids the run did not report: " + ", ".join(self.unmatched_expectations))
        return "\n".join(lines)


def gate(
    report: RunReport,
    expectations: Expectations | None = None,
    *,
    fail_on_unexpected_pass: bool = False,
    levels: tuple[Level, ...] = (Level.MUST,),
) -> GateResult:
    """CI verdict: fails on a bad result of a `levels` requirement that was not expected.

    Reads `expected` from the report (set it with `apply_expectations`, or pass `expectations`
    here and they are applied first). Without any expectations this equals "every applicable
    MUST passes".
    """
    if expectations is not None:
        report = apply_expectations(report, expectations)
    res = GateResult(ok=True, fail_on_unexpected_pass=fail_on_unexpected_pass)
    for r in report.requirements:
        if r.status in BAD:
            if r.expected is not None and r.expected in BAD:
                res.expected_failures.append(r)
                if r.expected != r.status:
                    res.changed_failures.append(r)
            elif r.level in levels:
                res.unexpected_failures.append(r)
            else:
                res.other_failures.append(r)
        elif r.status == Status.PASS and r.expected is not None and r.expected in BAD:
            res.unexpected_passes.append(r)
    if expectations is not None:
        seen = {r.id for r in report.requirements}
        res.unmatched_expectations = sorted(set(expectations.entries) - seen)
    res.ok = not res.unexpected_failures and not (fail_on_unexpected_pass and res.unexpected_passes)
    return res


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options for `conformance run` (and anything else that gates): sets `expectations`, `fail_on_unexpected_pass`."""
    parser.add_argument(
        "--expectations",
        metavar="FILE",
        default=None,
        help="YAML file of known failures (id -> {status, reason, issue}); CI then fails only on new MUST failures",
    )
    parser.add_argument(
        "--fail-on-unexpected-pass",
        action="store_true",
        default=False,
        help="also fail when a known failure now passes (default: only report it)",
    )
