"""Checks for determinism at temperature 0 (the oracle every output comparison relies on)."""

from __future__ import annotations

from typing import Any

from conformance.checks.common import clip
from conformance.results import CheckFailure


def identical_outputs(req: str, first: Any, second: Any, what: str = "output") -> None:
    """Two identical greedy requests give the same output."""
    if first != second:
        raise CheckFailure(req, f"identical greedy requests gave different {what}: {clip(first)} then {clip(second)}",
                           observed=second, expected=first)
