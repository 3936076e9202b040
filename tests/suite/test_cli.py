"""CLI: exit codes (0 pass, 1 MUST failure, 2 usage/unreachable), outputs, no secrets in outputs."""

from __future__ import annotations

import json

import pytest

import conformance.runner as runner
from conformance.catalogue import Requirement
from conformance.cli import main
from conformance.results import CheckFailure, Level, Source
from conformance.scenario import Context, ScenarioSpec

KEY = "sk-test-PLANTED-1234"


def _req(rid: str, level: str = "MUST") -> Requirement:
    return Requirement(id=rid, area=rid.split(".")[0], level=Level(level), statement=f"{rid} statement",
                       source=Source(url="seed:x", quote="q"))


def _ok(ctx: Context) -> None:
    ctx.client.get("/models", note=f"planted {KEY}")
    ctx.verify(ctx.spec.covers[0], lambda: None)


def _bad(ctx: Context) -> None:
    def check() -> None:
        raise CheckFailure(ctx.spec.covers[0], f"observed the key {KEY}")

    ctx.client.post("/completions", {"prompt": KEY})
    ctx.verify(ctx.spec.covers[0], check)


@pytest.fixture
def endpoint(raw_server, h):
    def handler(conn, request, stop):
        if b"/models" in request.split(b"\r\n", 1)[0]:
            conn.sendall(h.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]}))
        else:
            conn.sendall(h.json_response({"error": {"message": "nope"}}, 400))

    return raw_server(handler)


def _install(monkeypatch, failing_level: str | None):
    catalogue = {"stop.a": _req("stop.a")}
    scenarios = {"ok": ScenarioSpec("ok", ("stop.a",), _ok)}
    if failing_level:
        catalogue["stop.b"] = _req("stop.b", failing_level)
        scenarios["bad"] = ScenarioSpec("bad", ("stop.b",), _bad)
    monkeypatch.setattr(runner, "load_catalogue", lambda: catalogue)
    monkeypatch.setattr(runner, "load_scenarios", lambda: scenarios)


def _files_text(directory) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in directory.rglob("*") if p.is_file())


def test_exit_0_and_outputs(monkeypatch, endpoint, tmp_path):
    _install(monkeypatch, None)
    code = main(["run", "--base-url", endpoint.base_url, "--api-key", KEY, "--report-dir", str(tmp_path),
                 "--timeout", "5"])
    assert code == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["verdict"] == "pass" and data["requirements"][0]["id"] == "stop.a"
    assert KEY not in _files_text(tmp_path)


def test_exit_1_on_must_failure_and_no_key_anywhere(monkeypatch, endpoint, tmp_path, capsys):
    _install(monkeypatch, "MUST")
    monkeypatch.setenv("CONFORMANCE_API_KEY", KEY)
    code = main(["run", "--base-url", endpoint.base_url, "--report-dir", str(tmp_path), "--timeout", "5"])
    assert code == 1
    out = capsys.readouterr()
    assert "stop.b" in out.out
    assert KEY not in out.out + out.err
    assert KEY not in _files_text(tmp_path)
    assert (tmp_path / "results.json").exists()
    assert endpoint.requests and any(KEY.encode() in r for r in endpoint.requests)  # the key was really sent


def test_exit_0_when_only_should_fails(monkeypatch, endpoint, tmp_path):
    _install(monkeypatch, "SHOULD")
    assert main(["run", "--base-url", endpoint.base_url, "--report-dir", str(tmp_path), "--timeout", "5"]) == 0


def test_unreachable_exits_2_with_one_line(closed_port, tmp_path, capsys):
    code = main(["run", "--base-url", f"http://127.0.0.1:{closed_port}/v1", "--api-key", KEY,
                 "--report-dir", str(tmp_path), "--timeout", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and KEY not in err


@pytest.mark.parametrize("argv", [
    ["run", "--timeout", "0"],
    ["run", "--concurrency", "x"],
    ["run", "--profile", "no-such-profile", "--base-url", "http://127.0.0.1:1/v1"],
    ["run", "--base-url", "ftp://x"],
    ["run", "--bogus"],
    ["nope"],
    [],
])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_profile_show(capsys):
    assert main(["profile", "show", "fireworks"]) == 0
    assert "requirements apply" in capsys.readouterr().out
