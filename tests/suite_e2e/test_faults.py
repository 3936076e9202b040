"""Each fault knob of the fake breaks one behaviour; the suite must report the right requirement id.

Every case runs only the affected families (`only`), with a short timeout and few examples, and
checks: the named requirement is fail/error/timeout (never pass), its evidence holds the request
and the response (or the transport error), the run stays within its time bound, and the planted
API key appears nowhere in the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakes.harness import BAD, explain, run
from fakes.runs import conformance_run
from fakes.server import FAULT_KNOBS, PLANTED_KEY, FakeConfig, serve_fake

from conformance.catalogue import load_catalogue
from conformance.results import RunReport, Status
from conformance.runner import RunConfig, run_suite


@dataclass(frozen=True)
class Fault:
    name: str
    knobs: dict[str, Any]
    expect: tuple[str, ...]  # requirement ids that must not pass
    only: tuple[str, ...] = ()  # defaults to `expect`
    profile: str = "openai"
    timeout: float = 5.0
    statuses: frozenset[Status] = frozenset(BAD)
    bound_s: float = 45.0
    extra: dict[str, Any] = field(default_factory=dict)


FAULTS = [
    # stop
    Fault("stop-included-in-openai", {"stop_mode": "include"}, ("stop.excluded",), ("stop",)),
    Fault("stop-excluded-in-fireworks", {"stop_mode": "exclude"}, ("stop.included",), ("stop",),
          profile="fireworks"),
    Fault("stop-prefix-leaks-in-stream", {"stop_mode": "leak_partial"}, ("stop.stream_no_leak",), ("stop",)),
    # stream framing and chunks
    Fault("no-done", {"no_done": True}, ("stream.done",), ("stream",)),
    Fault("merged-events", {"merged_events": True}, ("stream.framing",), ("stream",)),
    Fault("bad-json-chunk", {"bad_json_chunk": True}, ("stream.framing",), ("stream",)),
    Fault("wrong-content-type", {"wrong_content_type": True}, ("stream.content_type",), ("stream",)),
    Fault("inconsistent-ids", {"inconsistent_ids": True}, ("stream.consistent_id",), ("stream",)),
    Fault("two-finish-reasons", {"two_finish_reasons": True}, ("stream.one_finish_reason",), ("stream",)),
    Fault("missing-role", {"missing_role": True}, ("stream.chat_role_first",), ("stream",)),
    Fault("stream-differs", {"stream_differs": True}, ("stream.equivalence",), ("stream",)),
    Fault("chunk-schema", {"chunk_schema_violation": True}, ("stream.chunk_object", "schema.chat.chunk"),
          ("stream.chunk_object", "schema.chat.chunk")),
    Fault("error-inside-200-stream", {"stream_errors_in_band": True}, ("stream.validation_error_not_stream",),
          ("stream.validation_error_not_stream",)),
    # usage
    Fault("usage-every-chunk-fireworks", {"usage_on_every_chunk": True}, ("usage.stream_null_elsewhere",),
          ("usage",), profile="fireworks"),
    Fault("usage-every-chunk-openai", {"usage_on_every_chunk": True}, ("usage.stream_include_usage_chunk",),
          ("usage",)),
    Fault("usage-missing-fireworks", {"usage_missing": True}, ("usage.stream_final_chunk",), ("usage",),
          profile="fireworks"),
    Fault("usage-missing-openai", {"usage_missing": True}, ("usage.stream_include_usage_chunk",), ("usage",)),
    Fault("usage-arithmetic", {"usage_wrong_arithmetic": True}, ("usage.arithmetic",), ("usage.arithmetic",)),
    # max_tokens and the context window
    Fault("ignore-max-tokens", {"ignore_max_tokens": True}, ("max_tokens.respected",), ("max_tokens",)),
    Fault("clamp-off-by-one", {"clamp_off_by_one": True}, ("max_tokens.clamp_arithmetic",), ("max_tokens",),
          profile="fireworks"),
    Fault("overflow-accepted-openai", {"accept_overflow": True}, ("max_tokens.overflow_rejected",),
          ("max_tokens",)),
    Fault("cleb-error-ignored-fireworks", {"accept_overflow": True}, ("max_tokens.cleb_error",),
          ("max_tokens",), profile="fireworks"),
    # errors and auth
    Fault("fastapi-422", {"fastapi_422_errors": True}, ("errors.envelope",), ("errors",)),
    Fault("any-key-accepted", {"accept_any_key": True}, ("auth.wrong_key", "auth.malformed_header"), ("auth",)),
    Fault("key-echoed-in-401", {"echo_key_in_errors": True}, ("auth.error_shape",), ("auth",)),
    # an endpoint without any auth, run with a key (as every case here is): the key says the endpoint
    # should require one, so keyless, wrong-key and non-Bearer requests served with 200 fail auth.*
    # (without a key it is not applicable: test_no_auth_without_a_key_is_not_applicable below)
    Fault("no-auth-at-all", {"no_auth": True}, ("auth.missing_key", "auth.wrong_key", "auth.malformed_header"),
          ("auth",)),
    Fault("unknown-model-served", {"unknown_model_ok": True}, ("errors.unknown_model",), ("errors",)),
    Fault("malformed-json-500", {"malformed_json_500": True}, ("errors.malformed_json",), ("errors",)),
    Fault("html-error-page", {"html_error_page": True}, ("schema.completion.response", "stream.done"),
          ("schema.completion.response", "stream.done")),
    # params
    Fault("reject-defaults", {"reject_defaults": True}, ("params.presence_penalty.default_accepted",),
          ("params",), profile="fireworks"),
    # n, logprobs, echo, models, determinism
    Fault("index-gap", {"index_gap": True}, ("n.indexes",), ("n",)),
    Fault("positive-logprobs", {"logprobs_positive": True}, ("logprobs.values_nonpositive",), ("logprobs",)),
    Fault("echo-ignored", {"echo_ignored": True}, ("echo.prefix",), ("echo",)),
    Fault("models-bad-shape", {"models_bad_shape": True}, ("models.list_shape",), ("models",)),
    Fault("nondeterministic", {"nondeterministic": True}, ("determinism.greedy_repeatable",),
          ("determinism",)),
    # transport faults: bounded by --timeout
    Fault("hang-before-headers", {"hang": "headers"}, ("stream.done",), ("stream.done",), timeout=2.0,
          bound_s=30.0, statuses=frozenset({Status.TIMEOUT})),
    Fault("hang-mid-stream", {"hang": "stream"}, ("stream.done",), ("stream.done",), timeout=2.0, bound_s=30.0,
          statuses=frozenset({Status.TIMEOUT})),
    Fault("reset-mid-stream", {"reset": True}, ("stream.done",), ("stream.done",), timeout=2.0, bound_s=30.0,
          statuses=frozenset({Status.ERROR})),
    Fault("endless-stream", {"endless_stream": True}, ("stream.done",), ("stream.done",), timeout=2.0,
          bound_s=30.0),
]


def _check_evidence(report: RunReport, rid: str) -> None:
    result = next(r for r in report.requirements if r.id == rid)
    assert result.evidence, f"{rid}: no evidence recorded"
    exchanges = [x for e in result.evidence for x in e.exchanges]
    assert exchanges, f"{rid}: evidence without any exchange"
    for x in exchanges:
        assert x.request.method and x.request.url.startswith("http://127.0.0.1:")
        assert x.response is not None or x.error, f"{rid}: exchange with neither response nor error"
    assert any(x.response is not None and x.response.status is not None or x.error for x in exchanges)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_reported_on_the_right_requirement(fault: Fault) -> None:
    started = time.monotonic()
    with serve_fake(FakeConfig(profile=fault.profile, api_key=PLANTED_KEY, **fault.knobs)) as url:
        report = run(url, fault.profile, only=fault.only or fault.expect, timeout=fault.timeout, **fault.extra)
    elapsed = time.monotonic() - started
    got = {r.id: r.status for r in report.requirements}
    for rid in fault.expect:
        assert rid in got, f"{rid} is not in the catalogue"
        assert got[rid] in fault.statuses, (
            f"{fault.name}: {rid} is {got[rid].value}, expected one of {sorted(s.value for s in fault.statuses)}\n"
            + explain(report, fault.expect))
        if got[rid] in BAD:
            _check_evidence(report, rid)
    if any(got[rid] in BAD for rid in fault.expect):
        assert report.verdict == Status.FAIL or all(
            r.level.value != "MUST" for r in report.requirements if r.id in fault.expect)
    assert PLANTED_KEY not in report.model_dump_json()
    assert elapsed < fault.bound_s, f"{fault.name}: run took {elapsed:.1f}s"


def test_key_echoed_by_the_endpoint_is_redacted() -> None:
    """The fake quotes the Authorization header in every error message; reports must not."""
    with serve_fake(FakeConfig(profile="openai", api_key=PLANTED_KEY, echo_key_in_errors=True)) as url:
        report = run(url, "openai", only=["errors", "auth"])
    dump = report.model_dump_json()
    assert PLANTED_KEY not in dump
    assert "PLANTED" not in dump


def test_every_fault_knob_and_every_requirement_family_has_a_case() -> None:
    knobs_used = {k for f in FAULTS for k in f.knobs}
    assert set(FAULT_KNOBS) <= knobs_used, f"knobs without an e2e case: {sorted(set(FAULT_KNOBS) - knobs_used)}"
    families = {req.area for req in load_catalogue().values()}
    caught = {rid.split(".")[0] for f in FAULTS for rid in f.expect if f.statuses & BAD}
    assert families - {"sdk"} <= caught, f"families without a fault case: {sorted(families - caught)}"


AUTH_IDS = ("auth.missing_key", "auth.wrong_key", "auth.malformed_header", "auth.error_shape")


def test_no_auth_without_a_key_is_not_applicable() -> None:
    """No key given for the run: an endpoint serving keyless requests is an open one, auth.* n/a."""
    with serve_fake(FakeConfig(profile="openai", api_key=PLANTED_KEY, no_auth=True)) as url:
        report = run_suite(RunConfig(base_url=url, api_key=None, profile="openai", only=["auth"], timeout=5.0,
                                     max_examples=2, report_dir=Path("reports") / "e2e-unused"))
    got = {r.id: r for r in report.requirements}
    for rid in AUTH_IDS:
        assert got[rid].status == Status.NOT_APPLICABLE, explain(report, AUTH_IDS)
        assert "authentication is not enforced" in got[rid].message and "--api-key" in got[rid].message
    assert report.verdict == Status.PASS


def test_no_auth_with_a_key_fails_with_exit_1(tmp_path: Path) -> None:
    """`conformance run` given a key ($CONFORMANCE_API_KEY) against an endpoint enforcing none: exit 1, and
    auth.missing_key's evidence is the keyless request and the 200 it got, the key redacted everywhere."""
    with serve_fake(FakeConfig(profile="openai", api_key=PLANTED_KEY, no_auth=True)) as url:
        done = conformance_run("openai", "openai", tmp_path / "report", "--base-url", url, "--only", "auth")
    assert done.code == 1, done.output
    report = done.report
    got = {r.id: r for r in report.requirements}
    for rid in ("auth.missing_key", "auth.wrong_key", "auth.malformed_header"):
        assert got[rid].status == Status.FAIL, explain(report, AUTH_IDS)
        assert "authentication is not enforced" in got[rid].message
    assert report.verdict == Status.FAIL
    exchanges = [x for e in got["auth.missing_key"].evidence for x in e.exchanges]
    keyless = [x for x in exchanges if "authorization" not in x.request.headers]
    assert keyless and keyless[0].request.method == "POST" and keyless[0].request.url.endswith("/completions")
    assert keyless[0].response is not None and keyless[0].response.status == 200
    texts = {**done.files(), "stdout": done.stdout, "stderr": done.stderr}
    assert not [name for name, text in texts.items() if PLANTED_KEY in text]
