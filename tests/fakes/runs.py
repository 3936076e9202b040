"""Run `conformance run` as a subprocess (real exit status, every written file) with the planted key."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conformance.results import RunReport
from reports.io import load_report

from .server import PLANTED_KEY

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = "2"
RUN_TIMEOUT = 420  # seconds for one whole `conformance run` subprocess
# Requirements that only the openai profile claims but that the fireworks reference server satisfies
# as well: it rejects stream_options on a non-streaming request in every profile (the fireworks
# documentation says nothing about it; tests/server/test_streaming.py pins it down).
OPENAI_ONLY_BUT_SHARED = frozenset({"usage.stream_options_requires_stream"})
KEY_ENV = ("CONFORMANCE_API_KEY", "OPENAI_API_KEY", "CONFORMANCE_BASE_URL")


@dataclass
class CliRun:
    """One `conformance run` subprocess: its exit status, terminal output and report directory."""

    server_profile: str
    suite_profile: str
    code: int
    stdout: str
    stderr: str
    report_dir: Path

    @property
    def report(self) -> RunReport:
        return load_report(self.report_dir / "results.json")

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def files(self) -> dict[str, str]:
        """Every file the run wrote, by path relative to the report directory."""
        return {str(p.relative_to(self.report_dir)): p.read_text(encoding="utf-8", errors="replace")
                for p in sorted(self.report_dir.rglob("*")) if p.is_file()}


def conformance_run(server_profile: str, suite_profile: str, report_dir: Path, *args: str) -> CliRun:
    """`python -m conformance run ...` with the planted key in $CONFORMANCE_API_KEY (never on the command line)."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_ENV}
    env["CONFORMANCE_API_KEY"] = PLANTED_KEY
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "conformance", "run", "--profile", suite_profile, "--report-dir", str(report_dir),
           "--max-examples", MAX_EXAMPLES, "--timeout", "60", *args]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)
    return CliRun(server_profile, suite_profile, done.returncode, done.stdout, done.stderr, report_dir)
