"""Statistics and formatting helpers (pure Python: no torch, no I/O)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    data = sorted(float(v) for v in values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return data[lo]
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def mean(values: Iterable[float]) -> float | None:
    data = [float(v) for v in values]
    return sum(data) / len(data) if data else None


def safe_ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0 or math.isnan(denominator):
        return None
    return numerator / denominator


def spread(values: Iterable[float | None]) -> dict[str, float | None]:
    """median/min/max/n of the values that are not None (a round that failed gives None)."""
    data = [float(v) for v in values if v is not None and not math.isnan(v)]
    return {
        "median": statistics.median(data) if data else None,
        "min": min(data) if data else None,
        "max": max(data) if data else None,
        "n": len(data),
    }


@dataclass(frozen=True)
class RatioCheck:
    """A ratio measured in one run, against a target (ratio >= target is a PASS).

    For a ratio taken over paired rounds, `value` is the median of the per-round ratios and
    `low`/`high`/`rounds` their spread (min, max) and how many rounds gave one.
    """

    name: str
    numerator: str
    denominator: str
    value: float | None
    target: float
    low: float | None = None
    high: float | None = None
    rounds: int | None = None

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "N/A"
        return "PASS" if self.value >= self.target else "MISS"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "value": self.value,
            "target": self.target,
            "verdict": self.verdict,
        }
        if self.rounds is not None:
            out.update(min=self.low, max=self.high, rounds=self.rounds)
        return out


def fmt_ratio(value: float | None, target: float | None = None) -> str:
    """'1.23x', '1.23x (>= 0.8 PASS)' or 'n/a'."""
    if value is None:
        return "n/a"
    text = f"{value:.2f}x"
    if target is not None:
        text += f" (>= {target:g} {'PASS' if value >= target else 'MISS'})"
    return text


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000.0:.1f}"


def fmt_num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024.0 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024.0
    return f"{size:.1f} GiB"  # pragma: no cover


def summarize(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/mean/max of a sample (None where the sample is empty)."""
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "mean": mean(values),
        "max": max(values) if values else None,
        "n": float(len(values)),
    }
