"""The default `conformance run` (no --base-url: the embedded reference server, every default) passes and
stays within its budget: at most 300 requests and 30k tokens (results.json's cost)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_REQUESTS = 300
MAX_TOKENS = 30_000
ENV = ("CONFORMANCE_API_KEY", "OPENAI_API_KEY", "CONFORMANCE_BASE_URL")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.skipif(not all(_has(m) for m in ("torch", "transformers", "fastapi", "uvicorn", "reference_server")),
                    reason="the reference server's dependencies are not installed")
def test_default_run_against_the_embedded_server_passes_within_budget(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run([sys.executable, "-m", "conformance", "run", "--report-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    data = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert data["verdict"] == "pass" and data["target"]["embedded"] is True
    cost = data["cost"]
    assert 0 < cost["requests"] <= MAX_REQUESTS, cost
    assert cost["total_tokens"] == cost["prompt_tokens"] + cost["completion_tokens"]
    assert 0 < cost["total_tokens"] <= MAX_TOKENS, cost
    # the embedded server gets a throwaway key, so authentication is exercised (and passes)
    statuses = {r["id"]: r["status"] for r in data["requirements"]}
    assert all(statuses[rid] == "pass" for rid in statuses if rid.startswith("auth.")), statuses
