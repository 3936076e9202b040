"""End-to-end tests of the suite against the in-process fakes (tests/fakes/server.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# `fakes` lives in tests/; appended so that the project's own packages always win.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from fakes.harness import run  # noqa: E402
from fakes.server import PLANTED_KEY, FakeConfig, serve_fake  # noqa: E402

from conformance.results import RunReport  # noqa: E402


@pytest.fixture(scope="session")
def fireworks_fake() -> Iterator[str]:
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY)) as url:
        yield url


@pytest.fixture(scope="session")
def openai_fake() -> Iterator[str]:
    with serve_fake(FakeConfig(profile="openai", api_key=PLANTED_KEY)) as url:
        yield url


@pytest.fixture(scope="session")
def fireworks_report(fireworks_fake: str) -> RunReport:
    """The whole suite, profile fireworks, against the good fireworks fake (shared by several tests)."""
    return run(fireworks_fake, "fireworks")
