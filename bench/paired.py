"""Paired, interleaved rounds for the single-stream comparison (pure Python: no torch, no I/O).

On a shared machine the speed of one ~1 s measurement drifts by 2x from one minute to the next, so
a ratio of two such measurements taken a minute apart says more about the machine than about the
systems. Instead each round measures every system back to back (raw generate b=1, the engine in
process, the server at concurrency 1, and the server with `--engine-process on`), the order
reversed every other round so a drift within a round favours each side equally often, and a ratio
is the MEDIAN OF THE PER-ROUND RATIOS: both sides of a per-round ratio saw (nearly) the same
machine, and the median drops the rounds a burst of foreign load hit.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from bench.stats import safe_ratio, spread

# The systems in round 1's order; even rounds reverse it; systems that are not measured drop out.
# raw sits in the middle: with the three default systems it is adjacent to both systems it is
# compared with; with the engine-process server as well, it is adjacent to both servers (the two
# ratios with targets) and the engine is one measurement away. Each comparison alternates which
# side runs first.
SINGLE_STREAM_ORDER: tuple[str, ...] = ("engine", "server_process", "raw", "server")
# (numerator, denominator) pairs whose per-round ratios are reported (those with both sides measured).
SINGLE_STREAM_PAIRS: tuple[tuple[str, str], ...] = (
    ("server", "raw"), ("engine", "raw"), ("server", "engine"),
    ("server_process", "raw"), ("server_process", "server"),
)


def pair_key(numerator: str, denominator: str) -> str:
    return f"{numerator} / {denominator}"


def round_order(index: int, systems: Sequence[str]) -> list[str]:
    """Order of round `index` (0-based): `systems` as given on even indexes, reversed on odd ones."""
    return list(systems) if index % 2 == 0 else list(reversed(systems))


@dataclass
class Sample:
    """One system's measurement in one round. tokens_per_s is None when it failed (error says why)."""

    tokens_per_s: float | None
    wall_s: float | None = None
    error: str | None = None
    detail: Any = None  # the system's own result object, pooled by the caller; not serialized here


@dataclass
class Round:
    index: int  # 0-based
    order: list[str]
    samples: dict[str, Sample] = field(default_factory=dict)
    other_cpu: dict[str, float | None] = field(default_factory=dict)  # per system, see `probe`

    def tokens_per_s(self, system: str) -> float | None:
        sample = self.samples.get(system)
        return sample.tokens_per_s if sample is not None else None

    def ratio(self, numerator: str, denominator: str) -> float | None:
        return safe_ratio(self.tokens_per_s(numerator), self.tokens_per_s(denominator))


@dataclass
class PairedRounds:
    systems: list[str]  # round 1's order
    pairs: list[tuple[str, str]]
    rounds: list[Round]

    def values(self, system: str) -> list[float | None]:
        return [r.tokens_per_s(system) for r in self.rounds]

    def ratios(self, numerator: str, denominator: str) -> list[float | None]:
        return [r.ratio(numerator, denominator) for r in self.rounds]

    def details(self, system: str) -> list[Any]:
        """The systems' result objects of the rounds where it produced one."""
        return [r.samples[system].detail for r in self.rounds
                if system in r.samples and r.samples[system].detail is not None]

    def tokens_per_s_stats(self) -> dict[str, dict[str, float | None]]:
        return {s: spread(self.values(s)) for s in self.systems}

    def ratio_stats(self) -> dict[str, dict[str, float | None]]:
        """Per pair: median, min, max and count of the per-round ratios (rounds where both sides ran)."""
        return {pair_key(n, d): spread(self.ratios(n, d)) for n, d in self.pairs}

    def as_dict(self) -> dict[str, Any]:
        rounds = []
        for r in self.rounds:
            rounds.append({
                "round": r.index + 1,
                "order": r.order,
                "tokens_per_s": {s: r.tokens_per_s(s) for s in r.order},
                "wall_s": {s: r.samples[s].wall_s for s in r.order if s in r.samples},
                "errors": {s: r.samples[s].error for s in r.order if s in r.samples and r.samples[s].error},
                "ratios": {pair_key(n, d): r.ratio(n, d) for n, d in self.pairs},
                "other_cpu_cores": r.other_cpu,
            })
        return {
            "systems": self.systems,
            "order": "round 1 as listed in systems, every other round reversed",
            "rounds": rounds,
            "tokens_per_s": self.tokens_per_s_stats(),
            "ratios": self.ratio_stats(),
        }


def run_paired_rounds(
    rounds: int,
    measures: Mapping[str, Callable[[], Sample]],
    *,
    order: Sequence[str] = SINGLE_STREAM_ORDER,
    pairs: Sequence[tuple[str, str]] = SINGLE_STREAM_PAIRS,
    probe: Callable[[], AbstractContextManager[Any]] | None = None,
    log: Callable[[str], None] | None = None,
) -> PairedRounds:
    """Run `rounds` rounds of every system in `measures`, alternating the order (see `round_order`).

    `order` fixes round 1's order of the systems present (systems not in it go last); only pairs
    whose both sides are measured are kept. A measure that raises gives a failed sample for that
    round (tokens_per_s None, which drops the round from that system's and its pairs' statistics).
    `probe()`, when given, is entered around each measurement; its `cores` attribute afterwards (CPU
    that other processes used meanwhile, see servers.OtherCpu) is recorded per round and system.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    systems = [s for s in order if s in measures] + [s for s in measures if s not in order]
    kept = [(n, d) for n, d in pairs if n in measures and d in measures]
    result = PairedRounds(systems, kept, [])
    for i in range(rounds):
        rnd = Round(i, round_order(i, systems))
        for system in rnd.order:
            try:
                with probe() if probe else contextlib.nullcontext() as watch:
                    rnd.samples[system] = measures[system]()
                if probe:
                    rnd.other_cpu[system] = getattr(watch, "cores", None)
            except Exception as exc:  # noqa: BLE001 - one failed measurement must not lose the others
                rnd.samples[system] = Sample(None, error=f"{type(exc).__name__}: {exc}")
                if log:
                    log(f"round {i + 1}: {system} failed: {traceback.format_exc(limit=3)[-500:]}")
        result.rounds.append(rnd)
        if log:
            figures = ", ".join(f"{s} {_fmt(rnd.tokens_per_s(s))}" for s in rnd.order)
            ratios = ", ".join(f"{pair_key(n, d)} {_fmt(rnd.ratio(n, d), 2)}" for n, d in kept)
            other = (f"; other processes' CPU {'/'.join(_fmt(rnd.other_cpu.get(s), 2) for s in rnd.order)} cores"
                     if rnd.other_cpu else "")
            log(f"round {i + 1}/{rounds}: {figures} tok/s" + (f"; {ratios}" if ratios else "") + other)
    return result


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
