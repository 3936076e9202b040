"""End-to-end runs of the suite against the REAL reference server (tiny model), shared by the tests here.

One reference server per profile for the whole session (EmbeddedServer, started with a planted API
key), and each (server profile, suite profile) pair is run once through the `conformance run`
command line in a subprocess, so the tests see real exit codes and every file a run writes:

    run_ff  fireworks server, fireworks suite profile: `conformance run` with no --base-url (the
            README's main command; the CLI starts its own embedded fireworks server)
    run_fo  fireworks server, openai profile:    `conformance run --base-url <fireworks server> --profile openai`
    run_oo  openai server, openai profile
    run_of  openai server, fireworks profile

Each run takes about a minute on 2 CPU cores with --max-examples 2.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# `fakes` lives in tests/; appended so that the project's own packages always win.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from fakes.runs import CliRun, conformance_run  # noqa: E402
from fakes.server import PLANTED_KEY  # noqa: E402


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


HAS_SERVER = all(_has(m) for m in ("torch", "transformers", "fastapi", "uvicorn", "reference_server.cli"))


@pytest.fixture(scope="session")
def reference_server_available() -> None:
    if not HAS_SERVER:
        pytest.skip("the reference server's dependencies (torch, transformers, fastapi, uvicorn) are not installed")


def _server(profile: str) -> Iterator[str]:
    from conformance.embedded import EmbeddedServer

    with EmbeddedServer(profile, api_key=PLANTED_KEY) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def fireworks_server(reference_server_available: None) -> Iterator[str]:
    """The reference server, fireworks profile, requiring the planted key; its /v1 base URL."""
    yield from _server("fireworks")


@pytest.fixture(scope="session")
def openai_server(reference_server_available: None) -> Iterator[str]:
    """The reference server, openai profile, requiring the planted key; its /v1 base URL."""
    yield from _server("openai")


@pytest.fixture(scope="session")
def run_ff(reference_server_available: None, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """`conformance run` with no --base-url: the embedded fireworks server, fireworks profile."""
    return conformance_run("fireworks", "fireworks", tmp_path_factory.mktemp("run-ff"))


@pytest.fixture(scope="session")
def run_fo(fireworks_server: str, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    return conformance_run("fireworks", "openai", tmp_path_factory.mktemp("run-fo"), "--base-url", fireworks_server)


@pytest.fixture(scope="session")
def run_oo(openai_server: str, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    return conformance_run("openai", "openai", tmp_path_factory.mktemp("run-oo"), "--base-url", openai_server)


@pytest.fixture(scope="session")
def run_of(openai_server: str, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    return conformance_run("openai", "fireworks", tmp_path_factory.mktemp("run-of"), "--base-url", openai_server)
