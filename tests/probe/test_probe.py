"""conformance probe: recovers each built-in profile from the fakes, names each broken axis, writes a
loadable profile that `conformance run` passes with, and feeds a run's `observed` section."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.server import PLANTED_KEY, FakeConfig, serve_fake
from tool_fake import serve_tool_fake

from conformance import schemas
from conformance.cli import main
from conformance.probe import MAX_REQUESTS, ProbeConfig, ProbeResult, probe_endpoint, to_observed, to_yaml
from conformance.probe.render import closest_profile, compare
from conformance.profiles import AXES, UNSUPPORTED_OPTIONS, load_profile
from conformance.results import RunReport

# The probe's plan needs at most 23 requests (GET /models included; infer.py lists them); MAX_REQUESTS
# is the hard cap above it. The fakes and the reference server take 19-22.
PLANNED = 23
TYPICAL = range(19, 23)


def probe(timeout: float = 5, **knobs: Any) -> ProbeResult:
    with serve_fake(FakeConfig(api_key=PLANTED_KEY, **knobs)) as url:
        return probe_endpoint(ProbeConfig(base_url=url, api_key=PLANTED_KEY, timeout=timeout))


def differs(result: ProbeResult, profile: str) -> set[str]:
    return set(compare(result, load_profile(profile)))


@pytest.fixture(scope="module", params=["fireworks", "openai"])
def clean(request: pytest.FixtureRequest) -> tuple[str, ProbeResult]:
    return request.param, probe(profile=request.param)


def test_recovers_each_builtin_profile_exactly(clean: tuple[str, ProbeResult]) -> None:
    name, result = clean
    assert result.behaviour == load_profile(name).behaviour, {a: i.line() for a, i in result.axes.items()}
    assert closest_profile(result).profile == name and closest_profile(result).differs == []
    assert result.error is None
    assert result.requests in TYPICAL and PLANNED <= MAX_REQUESTS == 25
    assert {k: v.value for k, v in result.observations.items()} == {
        "determinism.temperature_0": "deterministic", "stream.done": "sent", "params.defaults": "accepted"}
    for axis, inference in result.axes.items():
        assert inference.reason and inference.exchanges, axis
        assert all(" -> " in line for line in inference.evidence())
    assert result.unknown_axes == []
    if name == "openai":  # this fake's chat template renders no tools: supported, with the ambiguity said
        assert "never reach the prompt" in result.axes["params.functions"].caveat


def test_request_count_from_the_clients_counter() -> None:
    with serve_fake(FakeConfig(profile="openai", api_key=PLANTED_KEY)) as url:
        from conformance.client import Client
        from conformance.probe import run_probe
        from conformance.results import Cost

        cost = Cost()
        client = Client(url, PLANTED_KEY, 5, cost, model="fake-model")
        try:
            result = run_probe(client, 512)
        finally:
            client.close()
    assert cost.requests == result.requests <= PLANNED
    assert cost.prompt_tokens == result.prompt_tokens and cost.completion_tokens == result.completion_tokens


def test_the_request_cap_counts_get_models_and_stops_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    import conformance.probe.infer

    monkeypatch.setattr(conformance.probe.infer, "MAX_REQUESTS", 10)
    result = probe(profile="openai")
    assert result.error and "request budget of 10 spent" in result.error
    assert result.requests == 10  # GET /models + 9 probe requests
    assert result.unknown_axes  # the axes after the cap are not inferred, and say so


@pytest.mark.parametrize(("profile", "knobs", "axis", "value"), [
    ("fireworks", {"stop_mode": "exclude"}, "stop.output", "exclude"),
    ("openai", {"stop_mode": "include"}, "stop.output", "include"),
    ("openai", {"accept_overflow": True}, "max_tokens.overflow", "truncate"),
    ("fireworks", {"accept_overflow": True}, "max_tokens.context_length_exceeded_behavior", "ignored"),
    ("fireworks", {"usage_missing": True}, "stream.usage", "none"),
    ("openai", {"usage_missing": True}, "stream.usage", "none"),
])
def test_names_the_broken_axis(profile: str, knobs: dict[str, Any], axis: str, value: str) -> None:
    result = probe(profile=profile, **knobs)
    assert differs(result, profile) == {axis}, {a: result.axes[a].line() for a in differs(result, profile)}
    assert result.axes[axis].value == value and result.axes[axis].inferred
    assert axis in closest_profile(result).differs or closest_profile(result).profile != profile
    assert result.requests <= PLANNED


@pytest.mark.parametrize(("knobs", "observation", "value"), [
    ({"no_done": True}, "stream.done", "missing"),
    ({"nondeterministic": True}, "determinism.temperature_0", "nondeterministic"),
    ({"reject_defaults": True}, "params.defaults", "rejected"),
])
def test_names_the_broken_observation(knobs: dict[str, Any], observation: str, value: str) -> None:
    result = probe(profile="fireworks", **knobs)
    assert result.observations[observation].value == value, result.observations[observation].line()
    assert result.requests <= PLANNED


def test_a_chance_match_on_the_first_repeat_is_still_nondeterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline's first uncached repeat matches by chance, the second does not: nondeterministic."""
    import fakes.server

    from conformance import strategies as S

    original, seen = fakes.server.generate, [0]

    def varies_from_the_third_call(prompt: str, limit: int, sampling: Any, choice: int = 0) -> Any:
        if prompt == S.PROMPT and sampling.temperature == 0:
            seen[0] += 1
            sampling.nondeterministic = seen[0] >= 3
        return original(prompt, limit, sampling, choice)

    monkeypatch.setattr(fakes.server, "generate", varies_from_the_third_call)
    result = probe(profile="fireworks")
    inference = result.observations["determinism.temperature_0"]
    assert inference.value == "nondeterministic" and "run 3 of 3" in inference.line(), inference.line()
    assert result.requests <= PLANNED


# -- "ignored" values, mixed per-parameter profiles, functions, usage on every chunk -------------------


def tool_probe(behaviour: dict[str, str], **knobs: Any) -> ProbeResult:
    """Probe the fake whose chat template renders tools (tests/probe/tool_fake.py)."""
    with serve_tool_fake(FakeConfig(profile=behaviour, api_key=PLANTED_KEY, **knobs)) as url:
        return probe_endpoint(ProbeConfig(base_url=url, api_key=PLANTED_KEY, timeout=5))


def mixed(base: str, **params: str) -> dict[str, str]:
    return {**load_profile(base).behaviour, **{f"params.{name}": mode for name, mode in params.items()}}


MIXED = {
    "fireworks-mixed": mixed("fireworks", presence_penalty="ignored", logit_bias="ignored", best_of="rejected",
                             frequency_penalty="supported", functions="ignored"),
    "openai-mixed": mixed("openai", presence_penalty="supported", frequency_penalty="ignored", best_of="ignored",
                          logit_bias="supported", functions="rejected"),
    "all-ignored": mixed("openai", **{name: "ignored" for name in UNSUPPORTED_OPTIONS}),
}


@pytest.mark.parametrize("name", list(MIXED))
def test_recovers_mixed_per_parameter_profiles_and_ignored_values(name: str) -> None:
    behaviour = MIXED[name]
    result = tool_probe(behaviour)
    assert result.behaviour == behaviour, {a: i.line() for a, i in result.axes.items()}
    assert result.unknown_axes == [] and result.error is None
    assert result.requests in TYPICAL
    for option in UNSUPPORTED_OPTIONS:
        inference = result.axes[f"params.{option}"]
        assert inference.reason and inference.exchanges, option
        if inference.value == "ignored":
            assert "accepted" in inference.reason


def test_functions_supported_when_they_reach_the_prompt() -> None:
    result = tool_probe(load_profile("openai").behaviour)
    fn = result.axes["params.functions"]
    assert (fn.value, fn.status, fn.caveat) == ("supported", "inferred", "")
    assert "prompt_tokens" in fn.reason
    assert not any("tools" in line for line in fn.evidence())  # no control request needed


def test_functions_ignored_when_tools_reach_the_prompt_but_functions_do_not() -> None:
    result = tool_probe(mixed("openai", functions="ignored"))
    fn = result.axes["params.functions"]
    assert (fn.value, fn.status) == ("ignored", "inferred"), fn.line()
    assert "dropped" in fn.reason and any("tools=" in line for line in fn.evidence())
    assert differs(result, "openai") == {"params.functions"}


def test_functions_ambiguous_without_tool_rendering_is_supported_with_a_caveat() -> None:
    """The limitation, pinned down: where the chat template renders no tool definitions (this fake, the
    reference server's tiny model), an endpoint that drops functions looks like one that passes them on.
    supported is written (accepted with a valid chat response is what its requirement checks), said."""
    for mode in ("supported", "ignored"):
        result = probe(profile=mixed("openai", functions=mode))
        fn = result.axes["params.functions"]
        assert (fn.value, fn.status) == ("supported", "inferred"), fn.line()
        assert "never reach the prompt" in fn.caveat and "drops functions" in fn.caveat


@pytest.mark.parametrize(("profile", "value", "caveat"), [
    ("fireworks", "final_chunk", "usage also on"),
    ("openai", "include_usage", "also sent without stream_options"),
])
def test_usage_on_every_chunk_keeps_the_placement_and_says_so(profile: str, value: str, caveat: str) -> None:
    """A fake putting usage on every chunk keeps its profile's placement (so a run with the probed file
    fails that placement's "usage null elsewhere" requirement: the real defect), with a caveat."""
    result = probe(profile=profile, usage_on_every_chunk=True)
    usage = result.axes["stream.usage"]
    assert (usage.value, usage.status) == (value, "inferred"), usage.line()
    assert caveat in usage.caveat
    assert differs(result, profile) == set()


def test_nondeterminism_makes_output_comparisons_unknown_not_wrong() -> None:
    result = probe(profile="openai", nondeterministic=True)
    assert differs(result, "openai") == set()  # unknown axes fall back to the OpenAI values
    assert "params.presence_penalty" in result.unknown_axes
    assert "not deterministic" in result.axes["params.presence_penalty"].reason


def test_without_a_context_length_overflow_axes_are_unknown_and_loud() -> None:
    result = probe(profile="fireworks", context_length=None)
    assert {"max_tokens.overflow", "max_tokens.context_length_exceeded_behavior"} <= set(result.unknown_axes)
    text = to_yaml(result)
    assert "NOT INFERRED" in text and "max_tokens.overflow" in text.split("NOT INFERRED", 1)[1]
    assert result.axes["max_tokens.overflow"].value == "error"  # the OpenAI value


def test_a_stalled_stream_does_not_stop_the_other_axes() -> None:
    result = probe(profile="fireworks", hang="stream", timeout=1)
    assert "stream.usage" in result.unknown_axes
    assert result.axes["params.best_of"].value == "rejected" and result.axes["stop.output"].value == "include"


def test_a_hung_endpoint_stops_the_probe_quickly() -> None:
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY, hang="headers")) as url:
        result = probe_endpoint(ProbeConfig(base_url=url, api_key=PLANTED_KEY, timeout=1))
    assert result.error and ("timed out" in result.error or "not complete" in result.error)
    assert set(result.unknown_axes) == set(AXES)


def test_written_yaml_loads_validates_and_carries_evidence(clean: tuple[str, ProbeResult], tmp_path: Path) -> None:
    name, result = clean
    path = tmp_path / "probed.yaml"
    path.write_text(to_yaml(result), encoding="utf-8")
    profile = load_profile(str(path))
    assert profile.behaviour == load_profile(name).behaviour
    assert profile.id.startswith("probed-127.0.0.1") and profile.source.startswith("probed http://127.0.0.1")
    assert schemas.validate("profile", yaml.safe_load(path.read_text())) == []
    text = path.read_text()
    assert "# POST /completions" in text and f"closest known profile: {name}" in text
    assert PLANTED_KEY not in text


def test_observed_section_is_json_and_valid_in_a_report(clean: tuple[str, ProbeResult]) -> None:
    name, result = clean
    observed = to_observed(result, load_profile("fireworks"))
    json.dumps(observed)
    assert set(AXES) <= observed.keys() and observed["probe"]["closest_profile"] == name
    mismatched = observed["probe"]["differs_from_run_profile"]
    assert (mismatched == []) == (name == "fireworks")
    for axis in mismatched:
        assert observed[axis].startswith("≠ profile fireworks")


# -- through the CLI, and `conformance run` with the probed file ---------------------------------------


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[str]:
    profile, knobs = request.param
    with serve_fake(FakeConfig(profile=profile, api_key=PLANTED_KEY, **knobs)) as url:
        yield url


@pytest.mark.parametrize("fake", [("fireworks", {}), ("openai", {})], indirect=True, ids=["fireworks", "openai"])
def test_cli_probe_then_run_with_the_probed_file_passes(fake: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "probed.yaml"
    assert main(["probe", "--base-url", fake, "--api-key", PLANTED_KEY, "--out", str(out), "--timeout", "5"]) == 0
    printed = capsys.readouterr().out
    assert "closest known profile" in printed and "stop.output" in printed and PLANTED_KEY not in printed
    report_dir = tmp_path / "report"
    code = main(["run", "--base-url", fake, "--api-key", PLANTED_KEY, "--profile", str(out),
                 "--report-dir", str(report_dir), "--timeout", "20", "--max-examples", "2"])
    data = json.loads((report_dir / "results.json").read_text())
    bad = [(r["id"], r["message"][:200]) for r in data["requirements"] if r["status"] in ("fail", "error", "timeout")]
    assert code == 0, bad
    assert schemas.validate("report.results", data) == []
    observed = data["observed"]
    assert observed["probe"]["differs_from_run_profile"] == [] and observed["probe"]["requests"] <= PLANNED
    assert "Observed behaviour" in (report_dir / "report.html").read_text()


@pytest.mark.parametrize("fake", [("openai", {"no_done": True})], indirect=True, ids=["no_done"])
def test_run_with_the_probed_file_still_fails_on_real_defects(fake: str, tmp_path: Path) -> None:
    out = tmp_path / "probed.yaml"
    assert main(["probe", "--base-url", fake, "--api-key", PLANTED_KEY, "--out", str(out), "--timeout", "5"]) == 0
    assert "stream.done: missing" in out.read_text()
    report_dir = tmp_path / "report"
    code = main(["run", "--base-url", fake, "--api-key", PLANTED_KEY, "--profile", str(out),
                 "--report-dir", str(report_dir), "--timeout", "5", "--max-examples", "2", "--only", "stream"])
    assert code == 1
    report = RunReport.model_validate_json((report_dir / "results.json").read_text())
    assert {r.id: r.status.value for r in report.requirements}["stream.done"] in ("fail", "error")


def test_cli_probe_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--base-url", "ftp://x"]) == 2
    assert main(["probe", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "2"]) == 2
    assert "unreachable" in capsys.readouterr().err


def test_run_records_probe_errors_and_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import conformance.probe
    from conformance.runner import RunConfig, run_suite

    def broken(*args: Any, **kwargs: Any) -> ProbeResult:
        raise RuntimeError(f"probe exploded (key {PLANTED_KEY})")

    monkeypatch.setattr(conformance.probe, "run_probe", broken)
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY)) as url:
        report = run_suite(RunConfig(base_url=url, api_key=PLANTED_KEY, timeout=5, max_examples=1,
                                     concurrency=4, report_dir=tmp_path))
    assert PLANTED_KEY not in json.dumps(report.observed)
    assert "probe exploded" in report.observed["probe"]["error"]
    assert report.verdict.value == "pass"
    assert schemas.validate("report.results", report.model_dump(mode="json")) == []


# -- the real reference server ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("profile", ["fireworks", "openai"])
def test_reference_server_probe_then_run_with_the_probed_file_passes(profile: str, tmp_path: Path) -> None:
    """One reference server per profile: the probe recovers its profile on every axis (params.functions
    included, without the OpenAI fallback) within the request cap, and `conformance run --profile FILE`
    with the written file against the same server exits 0 (sdk.* without their interpreter skip, which
    does not fail a run)."""
    pytest.importorskip("reference_server.model.loader", reason="the reference server is not complete here")
    from fakes.runs import conformance_run

    from conformance.embedded import EmbeddedServer

    path = tmp_path / "probed.yaml"
    with EmbeddedServer(profile=profile, model="tiny", api_key=PLANTED_KEY) as url:
        result = probe_endpoint(ProbeConfig(base_url=url, api_key=PLANTED_KEY, timeout=60))
        assert result.error is None
        assert result.requests in TYPICAL and result.requests <= MAX_REQUESTS
        assert result.behaviour == load_profile(profile).behaviour, {a: i.line() for a, i in result.axes.items()}
        assert result.unknown_axes == []
        assert closest_profile(result).profile == profile
        assert result.observations["stream.done"].value == "sent"
        path.write_text(to_yaml(result), encoding="utf-8")
        assert load_profile(str(path)).behaviour == load_profile(profile).behaviour
        run = conformance_run(profile, str(path), tmp_path / "report", "--base-url", url)
    bad = [(r.id, r.status.value, r.message[:200]) for r in run.report.requirements
           if r.status.value in ("fail", "error", "timeout")]
    assert run.code == 0, (bad, run.output[-2000:])
    assert run.report.profile.id == f"probed-127.0.0.1-{url.split(':')[2].split('/')[0]}"
