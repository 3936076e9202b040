"""Shared fixtures for the schema tests (payload examples live in fixtures/)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` without an installed package or `python -m`
    sys.path.insert(0, str(ROOT))
