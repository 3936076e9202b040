"""Probe tests: against the in-process fakes (tests/fakes/server.py, and tests/probe/tool_fake.py whose
chat template renders tools) and, when slow, the reference server."""

from __future__ import annotations

import sys
from pathlib import Path

# `fakes` lives in tests/ and `tool_fake` here; appended so that the project's own packages always win.
sys.path.append(str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))
