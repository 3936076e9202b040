"""sdk.*: real clients pass against the good fake, and a broken endpoint fails the right requirement with the
client's name and version in the evidence (never the key)."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from broken_endpoint import Headers, broken_fake, rewrite_json
from fakes.harness import explain, run
from fakes.server import PLANTED_KEY, FakeConfig, serve_fake

from conformance.catalogue import load_catalogue
from conformance.results import RequirementResult, RunReport, Skipped, Status
from conformance.sdk_clients import LEGACY_HINT, node_sdk

SDK_IDS = [rid for rid in load_catalogue() if rid.startswith("sdk.")]
PYTHON_IDS = [rid for rid in SDK_IDS if rid.startswith(("sdk.python.", "sdk.langchain."))]
HAVE_NODE = shutil.which("node") is not None


def result(report: RunReport, rid: str) -> RequirementResult:
    return next(r for r in report.requirements if r.id == rid)


def assert_no_key(report: RunReport) -> None:
    text = report.model_dump_json()
    assert PLANTED_KEY not in text
    assert "PLANTED-conformance" not in text


def assert_fails_with_client(report: RunReport, rid: str, client: str) -> None:
    r = result(report, rid)
    assert r.status == Status.FAIL, explain(report, [rid])
    assert r.evidence, rid
    details = r.evidence[0].details
    assert details.get("client") == client, details
    assert isinstance(details.get("version"), str) and details["version"][0].isdigit(), details
    assert client in r.message, r.message


def test_every_sdk_requirement_passes_against_the_good_fake(fireworks_sdk_fake: str, no_legacy: None) -> None:
    report = run(fireworks_sdk_fake, "fireworks", only=["sdk"], timeout=20)
    for rid in PYTHON_IDS:
        r = result(report, rid)
        assert r.status == Status.PASS, explain(report, [rid])
        client = "langchain-openai" if rid.startswith("sdk.langchain") else "openai-python"
        assert r.evidence and r.evidence[0].details["client"] == client
        assert r.evidence[0].exchanges, f"{rid}: the client's requests are recorded as evidence"
    node = result(report, "sdk.node.stream_usage")
    if HAVE_NODE:
        assert node.status == Status.PASS, explain(report, [node.id])
        assert node.evidence[0].details["client"] == "openai-node"
        assert node.evidence[0].details["version"].startswith("7.")
    else:
        assert node.status == Status.SKIP and "node not found on PATH" in node.message
    for rid in SDK_IDS:
        if rid.startswith("sdk.legacy."):
            r = result(report, rid)
            assert r.status == Status.SKIP and LEGACY_HINT in r.message, explain(report, [rid])
    assert report.verdict == Status.PASS, explain(report)
    assert_no_key(report)


@pytest.mark.slow
def test_legacy_seed_samples_pass(fireworks_sdk_fake: str, legacy_python: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFORMANCE_LEGACY_PYTHON", legacy_python)
    report = run(fireworks_sdk_fake, "fireworks", only=["sdk.legacy.*"], timeout=20)
    for rid in [r for r in SDK_IDS if r.startswith("sdk.legacy.")]:
        r = result(report, rid)
        assert r.status == Status.PASS, explain(report, [rid])
        assert r.evidence[0].details["client"] == "openai-python-legacy"
        assert r.evidence[0].details["version"].startswith("0.")
    assert_no_key(report)


@pytest.mark.slow
def test_legacy_stream_usage_fails_when_usage_is_missing(legacy_python: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFORMANCE_LEGACY_PYTHON", legacy_python)
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY, usage_missing=True)) as url:
        report = run(url, "fireworks", only=["sdk.legacy.*"], timeout=20)
    assert_fails_with_client(report, "sdk.legacy.stream_usage", "openai-python-legacy")
    assert result(report, "sdk.legacy.chat").status == Status.PASS
    assert_no_key(report)


def _drop_index_and_object(data: Any) -> None:
    if isinstance(data, dict) and "choices" in data:
        data.pop("object", None)
        for choice in data.get("choices") or []:
            choice.pop("index", None)


def test_missing_index_and_object_fail_the_sdk_requirements(no_legacy: None) -> None:
    with broken_fake(rewrite_json(_drop_index_and_object)) as url:
        report = run(url, "fireworks", only=["sdk.python.*"], timeout=20)
    for rid in ("sdk.python.completions", "sdk.python.chat", "sdk.python.stream_chat", "sdk.python.n",
                "sdk.python.stream_completions"):
        assert_fails_with_client(report, rid, "openai-python")
    message = result(report, "sdk.python.completions").message
    assert "index" in message and "object" in message, message
    assert result(report, "sdk.python.errors.not_found").status == Status.PASS
    assert_no_key(report)


def test_streamed_text_differing_from_the_greedy_text_fails_the_stream_completions_checks(no_legacy: None) -> None:
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY, stream_differs=True)) as url:
        report = run(url, "fireworks", only=["sdk.python.stream_completions", "sdk.langchain.completions",
                                             "sdk.langchain.stream_completions"], timeout=20)
    assert_fails_with_client(report, "sdk.python.stream_completions", "openai-python")
    assert "differs from the non-streamed text" in result(report, "sdk.python.stream_completions").message
    assert_fails_with_client(report, "sdk.langchain.stream_completions", "langchain-openai")
    assert "differs from the invoked text" in result(report, "sdk.langchain.stream_completions").message
    assert result(report, "sdk.langchain.completions").status == Status.PASS
    for rid in ("sdk.python.stream_completions", "sdk.langchain.stream_completions"):
        assert result(report, rid).evidence[0].exchanges, f"{rid}: the client's requests are recorded"
    assert_no_key(report)


def test_a_nondeterministic_endpoint_makes_the_stream_comparisons_not_applicable(no_legacy: None) -> None:
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY, nondeterministic=True)) as url:
        report = run(url, "fireworks", only=["sdk.python.stream_completions", "sdk.langchain.completions",
                                             "sdk.langchain.stream_completions"], timeout=20)
    for rid in ("sdk.python.stream_completions", "sdk.langchain.stream_completions"):
        r = result(report, rid)
        assert r.status == Status.NOT_APPLICABLE, explain(report, [rid])
        assert "not deterministic" in r.message, r.message
    assert result(report, "sdk.langchain.completions").status == Status.PASS


def test_two_finish_reasons_fail_the_python_stream_completions_check(no_legacy: None) -> None:
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY, two_finish_reasons=True)) as url:
        report = run(url, "fireworks", only=["sdk.python.stream_completions"], timeout=20)
    assert_fails_with_client(report, "sdk.python.stream_completions", "openai-python")
    assert "finish_reason(s)" in result(report, "sdk.python.stream_completions").message


def test_non_openai_401_body_fails_the_authentication_requirement(no_legacy: None) -> None:
    def plain_401(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        if status != 401:
            return status, headers, body
        headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
        return 401, [*headers, (b"content-type", b"text/plain")], b"Unauthorized"

    with broken_fake(plain_401) as url:
        report = run(url, "fireworks", only=["sdk.python.errors.*"], timeout=20)
    assert_fails_with_client(report, "sdk.python.errors.authentication", "openai-python")
    assert "no error.message" in result(report, "sdk.python.errors.authentication").message
    assert result(report, "sdk.python.errors.bad_request").status == Status.PASS
    assert_no_key(report)


def test_errors_that_lose_the_server_message_fail(no_legacy: None) -> None:
    def generic(data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            data["error"]["message"] = None

    with broken_fake(rewrite_json(generic)) as url:
        report = run(url, "fireworks", only=["sdk.python.errors.*"], timeout=20)
    for rid in ("sdk.python.errors.authentication", "sdk.python.errors.bad_request", "sdk.python.errors.not_found"):
        assert_fails_with_client(report, rid, "openai-python")


def test_missing_streamed_usage_fails_python_and_node(no_legacy: None) -> None:
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY, usage_missing=True)) as url:
        report = run(url, "fireworks", only=["sdk.python.stream_usage", "sdk.node.*"], timeout=20)
    assert_fails_with_client(report, "sdk.python.stream_usage", "openai-python")
    if HAVE_NODE:
        assert_fails_with_client(report, "sdk.node.stream_usage", "openai-node")
        details = result(report, "sdk.node.stream_usage").evidence[0].details
        assert PLANTED_KEY not in json.dumps(details)
    assert_no_key(report)


def test_rejected_default_penalties_fail_langchain_completions(no_legacy: None) -> None:
    """langchain-openai's OpenAI LLM sends presence_penalty/frequency_penalty 0: rejecting defaults breaks it."""
    with serve_fake(FakeConfig(profile="fireworks", api_key=PLANTED_KEY, reject_defaults=True)) as url:
        report = run(url, "fireworks", only=["sdk.langchain.*", "sdk.python.completions"], timeout=20)
    assert_fails_with_client(report, "sdk.langchain.completions", "langchain-openai")
    r = result(report, "sdk.langchain.completions")
    assert "BadRequestError" in r.message, r.message
    assert "presence_penalty" in r.evidence[0].details.get("request_options", []), r.evidence[0].details
    assert result(report, "sdk.python.completions").status == Status.PASS
    assert_no_key(report)


def test_node_missing_is_a_skip_with_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Skipped, match="node not found on PATH"):
        node_sdk()


def test_npm_unavailable_is_a_skip_with_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    if not HAVE_NODE:
        pytest.skip("node not found on PATH")
    node_dir = tmp_path / "bin"
    node_dir.mkdir()
    (node_dir / "node").symlink_to(shutil.which("node") or "node")
    monkeypatch.setenv("PATH", str(node_dir))
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(Skipped, match="npm not found on PATH"):
        node_sdk()
