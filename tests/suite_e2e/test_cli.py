"""`conformance run` against the fakes: exit codes, written reports, no traceback, no key anywhere."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from fakes.server import PLANTED_KEY, FakeConfig, serve_fake

from conformance import schemas
from conformance.cli import main


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str, float]:
    started = time.monotonic()
    code = main(["run", *argv])
    out, err = capsys.readouterr()
    return code, out, err, time.monotonic() - started


def _written(report_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(report_dir)): p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(report_dir.rglob("*")) if p.is_file()}


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert PLANTED_KEY not in text
        assert "PLANTED-conformance" not in text


@pytest.mark.parametrize(
    "knobs,only,timeout",
    [
        ({"no_done": True}, "stream", "3"),
        ({"hang": "headers"}, "stream.done", "2"),
        ({"endless_stream": True}, "stream.done", "2"),
        ({"echo_key_in_errors": True, "fastapi_422_errors": True}, "errors", "3"),
    ],
    ids=["no-done", "hang", "endless", "key-echoed-in-errors"],
)
def test_broken_endpoint_exits_1_with_reports_and_no_secret(
    knobs: dict[str, Any], only: str, timeout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONFORMANCE_API_KEY", PLANTED_KEY)
    with serve_fake(FakeConfig(profile="openai", api_key=PLANTED_KEY, **knobs)) as url:
        code, out, err, elapsed = _cli(capsys, "--base-url", url, "--profile", "openai", "--report-dir",
                                       str(tmp_path), "--timeout", timeout, "--only", only, "--max-examples", "2")
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert elapsed < 40
    files = _written(tmp_path)
    assert "results.json" in files and "junit.xml" in files
    data = json.loads(files["results.json"])
    assert schemas.validate("report.results", data) == []
    assert data["verdict"] == "fail"
    _no_secret(out, err, *files.values())


def test_good_endpoint_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY)) as url:
        code, out, err, _ = _cli(capsys, "--base-url", url, "--api-key", PLANTED_KEY, "--profile", "fireworks",
                                 "--report-dir", str(tmp_path), "--only", "stream", "--only", "usage",
                                 "--max-examples", "2", "--timeout", "5")
    assert code == 0, out + err
    _no_secret(out, err, *_written(tmp_path).values())


def test_unreachable_endpoint_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err, elapsed = _cli(capsys, "--base-url", f"http://127.0.0.1:{port}/v1", "--api-key", PLANTED_KEY,
                                   "--report-dir", str(tmp_path), "--timeout", "2")
    assert code == 2
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert elapsed < 20
    _no_secret(out, err)
