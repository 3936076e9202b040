"""sdk.* against the REAL reference server (fireworks profile), strictly: every client available here must
PASS; only an unavailable client may SKIP, with its reason. (tests/reference/ lets the whole sdk area skip.)

Available: openai-python and langchain-openai (test extras); openai<1 when $CONFORMANCE_LEGACY_PYTHON is set
or `tox -e sdk-legacy` has built .tox/sdk-legacy; the npm openai package when node and npm are on PATH.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.harness import explain, run
from fakes.server import PLANTED_KEY

from conformance.catalogue import load_catalogue
from conformance.results import RunReport, Status
from conformance.sdk_clients import LEGACY_ENV
from conformance.sdk_clients.gate import client_of, main, problems, unavailable
from reports.io import write_results_json

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
TOX_LEGACY = ROOT / ".tox" / "sdk-legacy" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
SDK_IDS = sorted(rid for rid in load_catalogue() if rid.startswith("sdk."))
SERVER_MODULES = ("torch", "transformers", "fastapi", "uvicorn")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


@pytest.fixture(scope="module")
def reference_sdk_run() -> Iterator[tuple[RunReport, dict[str, str | None]]]:
    """One `--only sdk` run against the embedded fireworks reference server, and the clients' availability."""
    if not all(_has(m) for m in SERVER_MODULES):
        pytest.skip("the reference server's dependencies (torch, transformers, fastapi, uvicorn) are not installed")
    from conformance.embedded import EmbeddedServer

    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get(LEGACY_ENV) and TOX_LEGACY.exists():
            mp.setenv(LEGACY_ENV, str(TOX_LEGACY))
        why_not = unavailable()
        with EmbeddedServer("fireworks", api_key=PLANTED_KEY) as base_url:
            report = run(base_url, "fireworks", only=["sdk"], timeout=60)
        yield report, why_not


def test_langchain_and_openai_python_are_in_the_test_environment() -> None:
    why_not = unavailable()
    assert why_not["openai-python"] is None, why_not
    assert why_not["langchain-openai"] is None, why_not


@pytest.mark.parametrize("rid", SDK_IDS)
def test_sdk_requirement_passes_on_the_reference_server_when_its_client_is_available(
        reference_sdk_run: tuple[RunReport, dict[str, str | None]], rid: str) -> None:
    report, why_not = reference_sdk_run
    r = next(r for r in report.requirements if r.id == rid)
    client = client_of(rid)
    assert client is not None, f"{rid}: no client known to the gate (conformance/sdk_clients/gate.py CLIENTS)"
    reason = why_not[client]
    if reason is None:
        assert r.status == Status.PASS, explain(report, [rid])
        details = r.evidence[0].details
        assert details.get("client") == client, details
        assert str(details.get("version", ""))[:1].isdigit(), details
    else:
        assert r.status == Status.SKIP, f"{client} is unavailable ({reason}):\n{explain(report, [rid])}"
        assert r.message, f"{rid}: a skip names its reason"


def test_the_gate_finds_no_problem_in_the_reference_run(
        reference_sdk_run: tuple[RunReport, dict[str, str | None]], tmp_path: Path) -> None:
    """What `tox -e sdk` runs after the suite: `python -m conformance.sdk_clients.gate results.json`, exit 0."""
    report, why_not = reference_sdk_run
    entries = [{"id": r.id, "status": r.status.value, "message": r.message} for r in report.requirements]
    assert problems(entries, why_not) == []
    path = write_results_json(report, tmp_path / "results.json")
    with pytest.MonkeyPatch.context() as mp:
        if why_not["openai-python-legacy"] is None and not os.environ.get(LEGACY_ENV):
            mp.setenv(LEGACY_ENV, str(TOX_LEGACY))
        assert main([str(path)]) == 0


def test_the_gate_flags_failures_and_skips_of_available_clients() -> None:
    why_not: dict[str, str | None] = {"openai-python": None, "langchain-openai": None,
                                      "openai-python-legacy": "not set", "openai-node": None}
    entries = [
        {"id": "sdk.python.chat", "status": "pass", "message": ""},
        {"id": "sdk.python.errors.not_found", "status": "fail", "message": "a SHOULD failure counts too"},
        {"id": "sdk.legacy.chat", "status": "skip", "message": "CONFORMANCE_LEGACY_PYTHON not set"},
        {"id": "sdk.node.stream_usage", "status": "skip", "message": "cannot install the openai npm package"},
        {"id": "sdk.langchain.stream", "status": "not_applicable", "message": "nondeterministic"},
        {"id": "sdk.python.stop", "status": "error", "message": "HTTP 500"},
        {"id": "stop.included", "status": "fail", "message": "not an sdk requirement"},
    ]
    found = problems(entries, why_not)
    assert [line.split(":")[0] for line in found] == ["sdk.python.errors.not_found", "sdk.node.stream_usage",
                                                       "sdk.python.stop"], found
    assert "openai-node is available" in found[1]


def test_the_gate_command_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err
