"""Run the suite against one endpoint and aggregate verdicts into a RunReport.

    config = RunConfig(base_url="http://127.0.0.1:8000/v1", profile="fireworks")
    report = run_suite(config)           # raises Unreachable when the endpoint cannot be reached

Steps: discover the model and context length from GET /models (unless given), decide which
requirements apply (profile behaviour axes, profile overrides, --only), run every scenario
that covers at least one active requirement in a thread pool, and aggregate: per requirement
the worst status wins (results.SEVERITY), with the message of the worst verdict, the
evidence of every failing verdict (capped) and of one passing example.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import importlib
import pkgutil
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.catalogue import Requirement, load_catalogue
from conformance.client import Client, ResponseCache, TransportFailure
from conformance.profiles import Profile, load_profile
from conformance.redact import Redactor
from conformance.results import (
    SEVERITY,
    Cost,
    Evidence,
    Level,
    ProfileInfo,
    RequirementResult,
    RunReport,
    Status,
    SuiteInfo,
    Target,
)
from conformance.scenario import REGISTRY, Context, ScenarioSpec, TargetInfo, Verdict, run_scenario

DEFAULT_MAX_EXAMPLES = 5
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONCURRENCY = 4
BAD = (Status.FAIL, Status.ERROR, Status.TIMEOUT)
MAX_FAILURE_EVIDENCE = 10  # per requirement
MAX_EXCHANGES_PER_EVIDENCE = 12  # the last ones are kept: they led to the verdict
NOT_SELECTED = "not selected by --only"
NO_TEST = "no test covers this requirement"

# /v1/models entry keys that carry the context window, in order of preference.
CONTEXT_KEYS = (
    "context_length", "max_model_len", "context_window", "max_context_length",
    "max_sequence_length", "max_position_embeddings", "n_ctx", "context_size",
)


class Unreachable(Exception):
    """The endpoint cannot be used at all (connection refused, timeout, /models unusable)."""


@dataclass
class RunConfig:
    base_url: str
    api_key: str | None = None
    model: str | None = None
    chat_model: str | None = None
    profile: str = "fireworks"
    context_length: int | None = None
    report_dir: str | Path = Path("reports") / "latest"
    max_examples: int | None = None
    only: list[str] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    expectations: str | Path | None = None
    embedded: bool = False  # the caller started the reference server for this run
    cache: bool = True  # greedy-response cache
    probe: bool = True  # infer the observed behaviour (conformance.probe) alongside; never with --only


# progress(scenario_name, completed, total): called once with ("", 0, total) before the first
# scenario starts, then after each scenario ends.
Progress = Callable[[str, int, int], None]


@dataclass
class Discovery:
    model: str | None
    chat_model: str | None
    context_length: int | None
    models: list[str] = field(default_factory=list)
    note: str = ""


# -- selection and applicability --------------------------------------------------------


def selected(requirement_id: str, patterns: Iterable[str]) -> bool:
    """--only: fnmatch patterns on requirement ids; a bare area/prefix ("stop") selects its subtree."""
    patterns = list(patterns)
    if not patterns:
        return True
    for pattern in patterns:
        if fnmatch.fnmatchcase(requirement_id, pattern) or fnmatch.fnmatchcase(requirement_id, pattern + ".*"):
            return True
    return False


def applicability(requirement: Requirement, profile: Profile) -> tuple[Status | None, str]:
    """(None, "") when it applies; else (NOT_APPLICABLE or the override's status, reason)."""
    override = profile.overrides.get(requirement.id)
    if override is not None:
        raw = override.get("status", Status.NOT_APPLICABLE.value) if isinstance(override, dict) else override
        try:
            status = Status(str(raw))
        except ValueError:
            status = Status.NOT_APPLICABLE
        reason = str(override.get("reason", "")) if isinstance(override, dict) else ""
        if status in (Status.NOT_APPLICABLE, Status.SKIP):
            return status, reason or f"profile {profile.id} marks it {status.value}"
    ok, reason = requirement.applies_to(profile.behaviour)
    if not ok:
        return Status.NOT_APPLICABLE, reason
    return None, ""


def load_scenarios() -> dict[str, ScenarioSpec]:
    """Import conformance.scenarios and its submodules (populating REGISTRY); tolerate none."""
    try:
        package = importlib.import_module("conformance.scenarios")
    except ModuleNotFoundError as exc:
        if exc.name == "conformance.scenarios":
            return dict(REGISTRY)
        raise
    for info in pkgutil.iter_modules(getattr(package, "__path__", []), prefix="conformance.scenarios."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(info.name)
    return dict(REGISTRY)


# -- discovery -----------------------------------------------------------------------------


def _context_from_entry(entry: dict[str, Any]) -> int | None:
    for container in (entry, entry.get("meta"), entry.get("metadata"), entry.get("details")):
        if not isinstance(container, dict):
            continue
        for key in CONTEXT_KEYS:
            value = container.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
            if isinstance(value, str) and value.isdigit() and int(value) > 0:
                return int(value)
    return None


def discover(client: Client, config: RunConfig) -> Discovery:
    """Model and context length from GET /models; raises Unreachable if the endpoint is unusable."""
    try:
        resp = client.get("/models", note="discovery: list models")
    except TransportFailure as exc:
        message = str(exc)
        if not message.startswith("cannot connect"):
            message = f"cannot reach {client.redactor.text(config.base_url)}: {message}"
        raise Unreachable(message) from None
    entries: list[dict[str, Any]] = []
    if resp.status == 200 and isinstance(resp.json, dict) and isinstance(resp.json.get("data"), list):
        entries = [e for e in resp.json["data"] if isinstance(e, dict) and isinstance(e.get("id"), str)]
    model = config.model
    note = ""
    if model is None:
        if not entries:
            why = (f"GET /models returned HTTP {resp.status}" if resp.status != 200
                   else "GET /models lists no models")
            if resp.status in (401, 403):
                why += " (check the API key: --api-key or CONFORMANCE_API_KEY)"
            raise Unreachable(f"{why}; pass --model NAME")
        model = entries[0]["id"]
        note = f"model {model!r} is the first listed by /models"
    chat_model = config.chat_model or model
    context_length = config.context_length
    if context_length is None:
        for entry in entries:
            if entry["id"] == model:
                context_length = _context_from_entry(entry)
                break
    return Discovery(model, chat_model, context_length, [e["id"] for e in entries], note)


# -- aggregation ---------------------------------------------------------------------------


def _cap_evidence(evidence: Evidence) -> Evidence:
    if len(evidence.exchanges) <= MAX_EXCHANGES_PER_EVIDENCE:
        return evidence
    omitted = len(evidence.exchanges) - MAX_EXCHANGES_PER_EVIDENCE
    details = {**evidence.details, "exchanges_omitted": omitted}
    return evidence.model_copy(update={"exchanges": evidence.exchanges[-MAX_EXCHANGES_PER_EVIDENCE:],
                                       "details": details})


def aggregate(
    requirement: Requirement,
    verdicts: list[Verdict],
    *,
    tests: list[str],
    duration_s: float = 0.0,
    status_override: tuple[Status, str] | None = None,
) -> RequirementResult:
    """One RequirementResult from all verdicts recorded for it (worst wins)."""
    base: dict[str, Any] = {
        "id": requirement.id, "area": requirement.area, "level": requirement.level,
        "statement": requirement.statement, "source": requirement.source,
        "tests": tests, "duration_s": round(duration_s, 3),
    }
    if status_override is not None:
        status, message = status_override
        return RequirementResult(status=status, message=message, **base)
    if not verdicts:
        message = NO_TEST if not tests else f"no verdict recorded by {', '.join(tests)}"
        return RequirementResult(status=Status.ERROR, message=message, **base)
    worst = max(verdicts, key=lambda v: SEVERITY[v.status])
    status = worst.status
    if status in BAD:
        chosen = [v for v in verdicts if v.status in BAD]
        chosen.sort(key=lambda v: -SEVERITY[v.status])  # stable: worst first, then in order
        chosen = chosen[:MAX_FAILURE_EVIDENCE]
    else:
        chosen = [worst]
    evidence = [_cap_evidence(v.evidence) for v in chosen if v.evidence is not None]
    message = worst.message
    if status in BAD:
        failing = sum(1 for v in verdicts if v.status in BAD)
        if failing > 1 and len(verdicts) > 1:
            message = f"{message} ({failing} of {len(verdicts)} checks)" if message else message
    return RequirementResult(status=status, message=message, evidence=evidence, **base)


def verdict_of(results: list[RequirementResult]) -> Status:
    for result in results:
        if result.level == Level.MUST and result.status in BAD:
            return Status.FAIL
    return Status.PASS


def summarise(results: list[RequirementResult]) -> dict[str, int]:
    counts = {status.value: 0 for status in Status}
    for result in results:
        counts[result.status.value] += 1
    return counts


# -- the run -------------------------------------------------------------------------------


def _start_probe(root: Client, context_length: int | None, config: RunConfig, profile: Profile,
                 into: dict[str, Any]) -> threading.Thread | None:
    """Run conformance.probe in a thread alongside the scenarios, with a fork of the run's client (its
    requests count in the run's cost); its inference, or its error, lands in `into` (RunReport.observed)."""
    if not config.probe or config.only:
        return None

    def work() -> None:
        try:
            from conformance.probe import run_probe, to_observed

            into.update(to_observed(run_probe(root.fork(), context_length, base_url=config.base_url), profile))
        except Exception as exc:  # the run goes on without it
            into.clear()
            into["probe"] = {"error": f"probe failed: {type(exc).__name__}: {exc}"}

    thread = threading.Thread(target=work, name="probe", daemon=True)
    thread.start()
    return thread


def run_suite(
    config: RunConfig,
    progress: Progress | None = None,
    *,
    catalogue: dict[str, Requirement] | None = None,
    scenarios: dict[str, ScenarioSpec] | None = None,
    profile: Profile | None = None,
) -> RunReport:
    """Run every scenario against `config.base_url` and return the aggregated report.

    `catalogue`, `scenarios`, `profile` override the built-in ones (used by the suite's own tests).
    Raises Unreachable when the endpoint cannot be reached; ProfileError for a bad profile.
    """
    started_at = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    started = time.monotonic()
    profile = profile or load_profile(config.profile)
    catalogue = catalogue if catalogue is not None else load_catalogue()
    scenarios_given = scenarios
    observed: dict[str, Any] = {}
    probe_thread: threading.Thread | None = None
    scenarios = scenarios if scenarios is not None else load_scenarios()
    redactor = Redactor(config.api_key, urls=[config.base_url])
    cost = Cost()

    root = Client(config.base_url, config.api_key, config.timeout, cost,
                  model=config.model, chat_model=config.chat_model,
                  cache=ResponseCache() if config.cache else None)
    try:
        found = discover(root, config)
        root.model, root.chat_model = found.model, found.chat_model
        probe_thread = _start_probe(root, found.context_length, config, profile, observed) \
            if scenarios_given is None else None
        target = TargetInfo(config.base_url, found.model or "", found.chat_model or "",
                            found.context_length, config.api_key)

        # Decide, per requirement, whether it is checked at all.
        decided: dict[str, tuple[Status, str]] = {}
        for rid, requirement in catalogue.items():
            if not selected(rid, config.only):
                decided[rid] = (Status.SKIP, NOT_SELECTED)
                continue
            status, reason = applicability(requirement, profile)
            if status is not None:
                decided[rid] = (status, reason)
        active = {rid for rid in catalogue if rid not in decided}

        to_run = [spec for spec in scenarios.values() if any(c in active for c in spec.covers)]
        verdicts: dict[str, list[Verdict]] = {rid: [] for rid in catalogue}
        durations: dict[str, float] = {}
        lock = threading.Lock()
        total = len(to_run)
        if progress:
            progress("", 0, total)
        max_examples = config.max_examples or DEFAULT_MAX_EXAMPLES

        def run_one(spec: ScenarioSpec) -> tuple[ScenarioSpec, list[Verdict], float]:
            inapplicable = {c: decided[c][1] for c in spec.covers
                            if c in decided and decided[c][0] == Status.NOT_APPLICABLE}
            unselected = {c: decided[c][1] for c in spec.covers
                          if c in decided and decided[c][0] != Status.NOT_APPLICABLE}
            ctx = Context(spec=spec, client=root.fork(), profile=profile, target=target,
                          max_examples=max_examples, inapplicable=inapplicable, unselected=unselected)
            t0 = time.monotonic()
            result = run_scenario(ctx)
            return spec, result, time.monotonic() - t0

        completed = 0
        with ThreadPoolExecutor(max_workers=max(1, config.concurrency), thread_name_prefix="scenario") as pool:
            futures = [pool.submit(run_one, spec) for spec in to_run]
            for future in as_completed(futures):
                spec, result, elapsed = future.result()
                with lock:
                    durations[spec.name] = elapsed
                    for verdict in result:
                        if verdict.requirement in verdicts and verdict.requirement not in decided:
                            verdicts[verdict.requirement].append(verdict)
                    completed += 1
                if progress:
                    progress(spec.name, completed, total)
    finally:
        if probe_thread is not None:
            probe_thread.join()
        root.close()

    covering: dict[str, list[str]] = {rid: [] for rid in catalogue}
    for spec in scenarios.values():
        for rid in spec.covers:
            if rid in covering and spec.name not in covering[rid]:
                covering[rid].append(spec.name)

    results: list[RequirementResult] = []
    for rid, requirement in catalogue.items():
        tests = covering[rid]
        results.append(aggregate(
            requirement, verdicts[rid], tests=tests,
            duration_s=sum(durations.get(t, 0.0) for t in tests),
            status_override=decided.get(rid),
        ))
    # Secrets never leave the run, whatever a check put into a message or details.
    results = [RequirementResult.model_validate(redactor.value(r.model_dump(mode="json"))) for r in results]

    report = RunReport(
        suite=SuiteInfo(version=__version__),
        profile=ProfileInfo(id=profile.id, title=profile.title, source=profile.path),
        target=Target(base_url=redactor.text(config.base_url), model=found.model, chat_model=found.chat_model,
                      context_length=found.context_length, embedded=config.embedded),
        started_at=started_at,
        duration_s=round(time.monotonic() - started, 3),
        cost=cost,
        summary=summarise(results),
        verdict=verdict_of(results),
        requirements=results,
        observed=redactor.value(observed),
    )
    if config.expectations:
        from reports.expectations import apply_expectations, load_expectations

        report = apply_expectations(report, load_expectations(config.expectations))
    return report
