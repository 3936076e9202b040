"""The suite's own cost: a full default `conformance run` against the embedded server, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.servers import REPO_ROOT

# Targets from issue 7.
SUITE_WALL_TARGET_S = 60.0
SUITE_REQUESTS_TARGET = 300
SUITE_TOKENS_TARGET = 30_000


def run_suite(extra_args: list[str] | None = None, timeout: float = 1800.0) -> dict[str, Any]:
    """Run `python -m conformance run --report-dir TMP` and read results.json's duration and cost."""
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
        cmd = [sys.executable, "-m", "conformance", "run", "--report-dir", tmp, *(extra_args or [])]
        # What a user gets: no thread settings inherited from the benchmark.
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                                  check=False, env=env)
        except subprocess.TimeoutExpired:
            return {"command": " ".join(cmd[1:]), "error": f"timed out after {timeout:g}s"}
        wall = time.perf_counter() - t0
        out: dict[str, Any] = {"command": "python " + " ".join(cmd[1:]), "exit_status": proc.returncode,
                               "process_wall_s": wall}
        path = Path(tmp) / "results.json"
        if not path.is_file():
            out["error"] = f"no results.json; output tail:\n{(proc.stdout + proc.stderr)[-2000:]}"
            return out
        data = json.loads(path.read_text(encoding="utf-8"))
    cost = data.get("cost") or {}
    requests = int(cost.get("requests") or 0)
    tokens = int(cost.get("total_tokens") or (cost.get("prompt_tokens", 0) + cost.get("completion_tokens", 0)))
    duration = float(data.get("duration_s") or 0.0)
    out.update(
        duration_s=duration,
        requests=requests,
        prompt_tokens=int(cost.get("prompt_tokens") or 0),
        completion_tokens=int(cost.get("completion_tokens") or 0),
        total_tokens=tokens,
        summary=data.get("summary"),
        verdict=data.get("verdict"),
        targets={
            "wall_s": {"target": SUITE_WALL_TARGET_S, "value": wall,
                       "verdict": "PASS" if wall <= SUITE_WALL_TARGET_S else "MISS"},
            "requests": {"target": SUITE_REQUESTS_TARGET, "value": requests,
                         "verdict": "PASS" if requests <= SUITE_REQUESTS_TARGET else "MISS"},
            "tokens": {"target": SUITE_TOKENS_TARGET, "value": tokens,
                       "verdict": "PASS" if tokens <= SUITE_TOKENS_TARGET else "MISS"},
        },
    )
    return out
