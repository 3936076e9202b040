"""The pytest plugin: one item per requirement, pass/fail/skip mapped, inactive by default."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CONFTEST = '''
import conformance.runner as runner
from conformance.catalogue import Requirement
from conformance.results import CheckFailure, Level, Source
from conformance.scenario import ScenarioSpec

def _req(rid, level="MUST", applies_when=None):
    return Requirement(id=rid, area=rid.split(".")[0], level=Level(level), statement=rid + " statement",
                       source=Source(url="seed:x", quote="q"), applies_when=applies_when or {})

def _ok(ctx):
    ctx.client.get("/models")
    ctx.verify("stop.good", lambda: None)

def _bad(ctx):
    def check():
        raise CheckFailure("stop.bad", "observed something else")
    ctx.verify("stop.bad", check)

CATALOGUE = {r.id: r for r in [_req("stop.good"), _req("stop.bad"),
                                _req("stop.excluded", applies_when={"stop.output": "exclude"})]}
SCENARIOS = {"ok": ScenarioSpec("ok", ("stop.good", "stop.excluded"), _ok), "bad": ScenarioSpec("bad", ("stop.bad",), _bad)}
runner.load_catalogue = lambda: CATALOGUE
runner.load_scenarios = lambda: SCENARIOS

import conformance.plugin as plugin
import conformance.catalogue as catalogue
catalogue.load_catalogue = lambda: CATALOGUE
'''


def _pytest(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_inactive_without_options(tmp_path):
    result = _pytest(tmp_path)
    assert "stop.good" not in result.stdout


def test_items_per_requirement(raw_server, h, tmp_path):
    server = raw_server(lambda conn, req, stop: conn.sendall(
        h.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})))
    result = _pytest(tmp_path, "--base-url", server.base_url, "--profile", "fireworks")
    out = result.stdout
    assert "PASSED conformance::stop.good" in out, out
    assert "FAILED conformance::stop.bad" in out, out
    assert "observed something else" in out
    assert "SKIPPED" in out and "stop.output" in out
    assert result.returncode == 1
    assert "warning" not in out.splitlines()[-1], out
