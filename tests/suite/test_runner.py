"""Runner: discovery, applicability, --only, worst-wins aggregation, verdict, redaction."""

from __future__ import annotations

import json

import pytest

from conformance.catalogue import Requirement
from conformance.profiles import load_profile
from conformance.results import CheckFailure, EndpointError, Level, Source, Status
from conformance.runner import RunConfig, Unreachable, run_suite, selected
from conformance.scenario import Context, ScenarioSpec

KEY = "sk-test-PLANTED-1234"


def req(rid: str, level: str = "MUST", applies_when: dict | None = None) -> Requirement:
    return Requirement(id=rid, area=rid.split(".")[0], level=Level(level), statement=f"{rid} statement",
                       source=Source(url="seed:x", quote="q"), applies_when=applies_when or {})


def spec(name: str, covers: list[str], func) -> ScenarioSpec:
    return ScenarioSpec(name, tuple(covers), func)


def passes(ctx: Context) -> None:
    ctx.client.get("/models", note="probe")
    for rid in ctx.spec.covers:
        ctx.verify(rid, lambda: None)


def fails_once(ctx: Context) -> None:
    ctx.client.get("/models", note=f"key {KEY}")

    def bad() -> None:
        raise CheckFailure("stop.included", f"text did not end with the stop word (key {KEY})", observed="x")

    ctx.verify("stop.included", lambda: None)
    ctx.verify("stop.included", bad)


def errors(ctx: Context) -> None:
    def broken() -> None:
        raise EndpointError("stream.done", "no [DONE]")

    ctx.verify("stream.done", broken)


@pytest.fixture
def models_server(raw_server, h):
    def handler(conn, request, stop):
        conn.sendall(h.json_response({"object": "list", "data": [
            {"id": "m-1", "object": "model", "max_model_len": 2048},
            {"id": "m-2", "object": "model", "context_length": 4096},
        ]}))

    return raw_server(handler)


def run(server, catalogue, scenarios, **kw):
    config = RunConfig(base_url=server.base_url, api_key=KEY, timeout=5, concurrency=2, **kw)
    return run_suite(config, catalogue={r.id: r for r in catalogue},
                     scenarios={s.name: s for s in scenarios}, profile=load_profile(kw.get("profile", "fireworks")))


def by_id(report):
    return {r.id: r for r in report.requirements}


def test_aggregation_worst_wins_and_verdict(models_server):
    catalogue = [req("stop.included"), req("stream.done"), req("usage.ok", "SHOULD"), req("models.orphan", "MAY")]
    scenarios = [spec("a", ["stop.included"], fails_once), spec("b", ["stop.included", "usage.ok"], passes),
                 spec("c", ["stream.done"], errors)]
    progress = []
    report = run(models_server, catalogue, scenarios)
    results = by_id(report)
    assert results["stop.included"].status == Status.FAIL
    assert "did not end with the stop word" in results["stop.included"].message
    assert sorted(results["stop.included"].tests) == ["a", "b"]
    assert results["stop.included"].evidence and results["stop.included"].evidence[0].details == {"observed": "x"}
    assert results["stream.done"].status == Status.ERROR
    assert results["usage.ok"].status == Status.PASS and len(results["usage.ok"].evidence) == 1
    assert results["models.orphan"].status == Status.ERROR
    assert results["models.orphan"].message == "no test covers this requirement"
    assert report.verdict == Status.FAIL
    assert report.summary["fail"] == 1 and report.summary["error"] == 2 and report.summary["pass"] == 1
    assert report.target.model == "m-1" and report.target.chat_model == "m-1"
    assert report.target.context_length == 2048
    assert report.cost.requests >= 3
    dumped = json.dumps(report.model_dump(mode="json"))
    assert KEY not in dumped
    del progress


def test_verdict_pass_when_only_should_fails(models_server):
    def should_fail(ctx: Context) -> None:
        ctx.verify("usage.x", lambda: (_ for _ in ()).throw(CheckFailure("usage.x", "nope")))

    report = run(models_server, [req("usage.x", "SHOULD"), req("stop.y")],
                 [spec("s", ["usage.x"], should_fail), spec("t", ["stop.y"], passes)])
    assert by_id(report)["usage.x"].status == Status.FAIL
    assert report.verdict == Status.PASS


def test_not_applicable_by_profile_and_only(models_server):
    calls = []

    def never(ctx: Context) -> None:
        calls.append(ctx.spec.name)
        passes(ctx)

    catalogue = [
        req("stop.excluded", applies_when={"stop.output": "exclude"}),  # fireworks includes
        req("stop.included", applies_when={"stop.output": "include"}),
        req("usage.z"),
    ]
    scenarios = [spec("only_excluded", ["stop.excluded"], never),
                 spec("both", ["stop.excluded", "stop.included"], passes),
                 spec("usage", ["usage.z"], never)]
    report = run(models_server, catalogue, scenarios, only=["stop.*"])
    results = by_id(report)
    assert results["stop.excluded"].status == Status.NOT_APPLICABLE
    assert "stop.output" in results["stop.excluded"].message
    assert results["stop.included"].status == Status.PASS
    assert results["usage.z"].status == Status.SKIP and results["usage.z"].message == "not selected by --only"
    assert calls == []  # neither the not-applicable-only scenario nor the unselected one ran
    assert report.verdict == Status.PASS


def test_explicit_model_and_context_length(models_server):
    report = run(models_server, [req("stop.a")], [spec("p", ["stop.a"], passes)],
                 model="m-2", chat_model="chat-x")
    assert report.target.model == "m-2" and report.target.chat_model == "chat-x"
    assert report.target.context_length == 4096


def test_scenario_crash_is_error_not_crash(models_server):
    def crash(ctx: Context) -> None:
        raise ZeroDivisionError("oops")

    report = run(models_server, [req("stop.a")], [spec("crash", ["stop.a"], crash)])
    result = by_id(report)["stop.a"]
    assert result.status == Status.ERROR and "ZeroDivisionError" in result.message


def test_unreachable(closed_port):
    with pytest.raises(Unreachable):
        run_suite(RunConfig(base_url=f"http://127.0.0.1:{closed_port}/v1", timeout=2),
                  catalogue={}, scenarios={})


def test_only_patterns():
    assert selected("stop.included", [])
    assert selected("stop.included", ["stop"])
    assert selected("stop.included", ["stop.*"])
    assert selected("stop.included", ["*.included"])
    assert not selected("stream.done", ["stop"])
