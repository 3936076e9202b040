"""Fixtures for the sdk.* tests: the good fake and a cached virtualenv with the legacy openai<1 SDK.
Broken endpoints (ASGI middleware around the fake) are in broken_endpoint.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# `fakes` lives in tests/, `broken_endpoint` here; appended so that the project's own packages always win.
sys.path.append(str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))

from fakes.server import PLANTED_KEY, FakeConfig, serve_fake  # noqa: E402

from conformance.sdk_clients import LEGACY_ENV, cache_dir  # noqa: E402


@pytest.fixture(scope="session")
def fireworks_sdk_fake() -> Iterator[str]:
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY)) as url:
        yield url


@pytest.fixture()
def no_legacy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEGACY_ENV, raising=False)


@pytest.fixture(scope="session")
def legacy_python() -> str:
    """A Python with openai<1: $CONFORMANCE_LEGACY_PYTHON, else a venv cached under the suite's cache dir."""
    given = os.environ.get(LEGACY_ENV)
    if given:
        return given
    venv = cache_dir() / "legacy-venv"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    check = [str(python), "-c", "import openai, sys; sys.exit(0 if openai.version.VERSION.startswith('0.') else 1)"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return str(python)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True,
                       timeout=120)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "openai<1"],
                       check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot build a venv with openai<1 (offline?): {exc}")
    return str(python)
