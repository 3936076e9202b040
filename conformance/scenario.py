"""Scenarios ("tests") and the context they run in.

A scenario makes a few requests and verifies one or more requirements through small
check functions (conformance/checks/). It declares which requirement ids it covers;
`conformance/manifest.yaml` is generated from these declarations and checked in, so a
requirement without a test or a test without a requirement fails the unit tests.

    @scenario("stop.single_string", covers=["stop.included", "stop.finish_reason"])
    def stop_single_string(ctx: Context) -> None:
        base = ctx.client.completions(prompt=..., max_tokens=16, temperature=0, note="baseline")
        ...
        ctx.verify("stop.included", checks.stop.text_ends_with_stop, text, stop)

Outcomes: a check that returns normally records PASS; one that raises CheckFailure
records FAIL (EndpointError -> ERROR, EndpointTimeout -> TIMEOUT) with the exchanges
made so far as evidence. An exception escaping the scenario (transport failure,
NotApplicable, Skipped) is recorded for every covered requirement not yet verified.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conformance.results import (
    CheckFailure,
    Evidence,
    Exchange,
    NotApplicable,
    Skipped,
    Status,
)

if TYPE_CHECKING:
    from conformance.client import Client
    from conformance.profiles import Profile


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    covers: tuple[str, ...]
    func: Callable[[Context], None]
    doc: str = ""


REGISTRY: dict[str, ScenarioSpec] = {}


def scenario(name: str, covers: list[str] | tuple[str, ...]) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register a scenario under a stable name (used in reports and the manifest).

    Raises ValueError at registration for a scenario that covers no requirement (a test without a
    requirement), a covers= given as a bare string, or a name registered twice."""
    if isinstance(covers, str):
        raise ValueError(f"scenario {name!r}: covers= must be a list of requirement ids, not the string {covers!r}")
    if not covers:
        raise ValueError(f"scenario {name!r} covers no requirement: every scenario must name the requirement "
                         "id(s) it verifies in covers=[...] (a test without a requirement is refused)")

    def register(func: Callable[[Context], None]) -> Callable[[Context], None]:
        if name in REGISTRY and REGISTRY[name].func is not func:
            raise ValueError(f"scenario {name!r} registered twice")
        REGISTRY[name] = ScenarioSpec(name, tuple(covers), func, (func.__doc__ or "").strip().split("\n")[0])
        return func

    return register


@dataclass
class Verdict:
    requirement: str
    status: Status
    test: str
    message: str = ""
    evidence: Evidence | None = None


@dataclass
class TargetInfo:
    base_url: str
    model: str
    chat_model: str
    context_length: int | None
    api_key: str | None = None  # never written anywhere; the client redacts it


@dataclass
class Context:
    """Everything a scenario may use. One Context per scenario run (not shared across threads)."""

    spec: ScenarioSpec
    client: Client
    profile: Profile
    target: TargetInfo
    max_examples: int = 10
    verdicts: list[Verdict] = field(default_factory=list)
    # requirement -> reason, decided by the runner before the scenario starts: verify()/expect()
    # record NOT_APPLICABLE (resp. SKIP) for these without running the check.
    inapplicable: dict[str, str] = field(default_factory=dict)
    unselected: dict[str, str] = field(default_factory=dict)
    _mark: int = 0  # index into client.exchanges where this scenario's evidence starts

    def applies(self, requirement: str) -> bool:
        """False when the profile makes `requirement` not applicable or --only deselected it.

        Scenarios may use this to skip requests whose only purpose is that requirement."""
        return requirement not in self.inapplicable and requirement not in self.unselected

    # -- verification -------------------------------------------------------------
    def verify(self, requirement: str, check: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Run one check for one requirement and record its outcome. Returns True on pass."""
        if self._decided(requirement):
            return False
        with self.expect(requirement):
            check(*args, **kwargs)
            return True
        return False

    @contextlib.contextmanager
    def expect(self, requirement: str) -> Iterator[None]:
        """Record PASS if the block completes, FAIL/ERROR/TIMEOUT if it raises a CheckFailure for it.

        For a requirement that does not apply (or is not selected), the block still runs but its
        outcome is ignored: NOT_APPLICABLE (or SKIP) is recorded instead."""
        if self._decided(requirement):
            with contextlib.suppress(CheckFailure):
                yield
            return
        try:
            yield
        except CheckFailure as failure:
            # A failure raised for another requirement inside this block still counts against
            # the requirement named by the failure; the one being verified gets it as well.
            self.record(requirement, failure.status, failure.message, failure.details)
            if failure.requirement != requirement and failure.requirement in self.spec.covers:
                self.record(failure.requirement, failure.status, failure.message, failure.details)
        else:
            self.record(requirement, Status.PASS)

    def _decided(self, requirement: str) -> bool:
        """Record the runner's decision for a requirement that must not be checked; True if so."""
        self._assert_covered(requirement)
        if requirement in self.inapplicable:
            if not any(v.requirement == requirement for v in self.verdicts):
                self.record(requirement, Status.NOT_APPLICABLE, self.inapplicable[requirement])
            return True
        if requirement in self.unselected:
            if not any(v.requirement == requirement for v in self.verdicts):
                self.record(requirement, Status.SKIP, self.unselected[requirement])
            return True
        return False

    def not_applicable(self, requirement: str, reason: str) -> None:
        self._assert_covered(requirement)
        self.record(requirement, Status.NOT_APPLICABLE, reason)

    def record(self, requirement: str, status: Status, message: str = "", details: dict[str, Any] | None = None) -> None:
        evidence = Evidence(
            test=self.spec.name,
            message=message,
            exchanges=self.exchanges_since_start(),
            details=details or {},
        )
        self.verdicts.append(Verdict(requirement, status, self.spec.name, message, evidence))

    def exchanges_since_start(self) -> list[Exchange]:
        return list(self.client.exchanges[self._mark:])

    def _assert_covered(self, requirement: str) -> None:
        if requirement not in self.spec.covers:
            raise AssertionError(f"scenario {self.spec.name} verifies {requirement} but does not declare it in covers=")

    # -- prerequisites --------------------------------------------------------------
    def require_context_length(self) -> int:
        if self.target.context_length is None:
            raise NotApplicable(
                "the endpoint's context length is unknown: /v1/models reports none; pass --context-length N"
            )
        return self.target.context_length

    def behaviour(self, axis: str) -> str:
        return self.profile.behaviour[axis]


def run_scenario(ctx: Context) -> list[Verdict]:
    """Run one scenario to completion; never raises. Unverified covers get the scenario's fate."""
    from conformance.client import TransportFailure  # local import: client imports results only

    ctx._mark = len(ctx.client.exchanges)
    started = time.monotonic()
    fate: tuple[Status, str] | None = None
    try:
        ctx.spec.func(ctx)
    except NotApplicable as exc:
        fate = (Status.NOT_APPLICABLE, exc.reason)
    except Skipped as exc:
        fate = (Status.SKIP, exc.reason)
    except CheckFailure as failure:
        # Raised outside ctx.expect(): charge the named requirement, and leave the rest to the fate.
        if failure.requirement in ctx.spec.covers:
            ctx.record(failure.requirement, failure.status, failure.message, failure.details)
        fate = (failure.status if failure.status != Status.FAIL else Status.ERROR,
                f"scenario stopped: {failure.message}")
    except TransportFailure as exc:
        fate = (exc.status, str(exc))
    except Exception as exc:  # a bug in a scenario must not take the run down
        fate = (Status.ERROR, f"suite error in scenario {ctx.spec.name}: {type(exc).__name__}: {exc}")
    verified = {v.requirement for v in ctx.verdicts}
    for requirement in ctx.spec.covers:
        if requirement not in verified and ctx._decided(requirement):
            continue
        if requirement not in verified:
            status, message = fate or (Status.ERROR, f"scenario {ctx.spec.name} ended without verifying {requirement}")
            ctx.record(requirement, status, message)
    del started
    return ctx.verdicts
