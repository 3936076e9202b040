"""Synthetic but realistic `RunReport`s for the report tests (no endpoint, no runner)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.results import (
    SEVERITY,
    Cost,
    Evidence,
    Exchange,
    HttpRequestRecord,
    HttpResponseRecord,
    Level,
    ProfileInfo,
    RequirementResult,
    RunReport,
    Source,
    Status,
    SuiteInfo,
    Target,
)

SCRIPT_BODY = "<script>alert('owned')</script> & \"quotes\""
PLANTED_KEY = "sk-PLANTED-reports-9999"

# id, area, level, status, message
ROWS: list[tuple[str, str, Level, Status, str]] = [
    ("schema.completion_object", "schema", Level.MUST, Status.PASS, ""),
    ("schema.choice_index", "schema", Level.MUST, Status.FAIL, "choices[1].index is 0; expected 1"),
    ("stop.included", "stop", Level.MUST, Status.PASS, ""),
    ("stop.excluded", "stop", Level.MUST, Status.NOT_APPLICABLE, "profile has stop.output='include'"),
    ("stream.done_marker", "stream", Level.MUST, Status.TIMEOUT, "no [DONE] after 30s"),
    ("stream.usage_final_chunk", "stream", Level.SHOULD, Status.FAIL, "usage missing on the final chunk"),
    ("usage.total", "usage", Level.MUST, Status.ERROR, "HTTP 500 with an HTML body"),
    ("params.best_of_rejected", "params", Level.MUST, Status.PASS, ""),
    ("errors.invalid_json", "errors", Level.SHOULD, Status.SKIP, "--only stop"),
    ("logprobs.top_logprobs", "logprobs", Level.MAY, Status.PASS, ""),
]


def exchange(body: Any = None, status: int = 200, *, events: list[str] | None = None, error: str | None = None) -> Exchange:
    return Exchange(
        request=HttpRequestRecord(
            method="POST",
            url="http://127.0.0.1:8000/v1/completions",
            headers={"authorization": "Bearer <redacted>", "content-type": "application/json"},
            body={"model": "tiny", "prompt": "Say hi", "max_tokens": 8},
        ),
        response=None if error else HttpResponseRecord(
            status=status, headers={"content-type": "application/json"}, body=body, events=events, elapsed_s=0.12
        ),
        error=error,
        note="greedy baseline",
    )


def make_result(rid: str, area: str, level: Level, status: Status, message: str = "") -> RequirementResult:
    evidence: list[Evidence] = []
    if status in (Status.FAIL, Status.ERROR, Status.TIMEOUT):
        if rid == "usage.total":
            ex = exchange(SCRIPT_BODY, status=500)
        elif status == Status.TIMEOUT:
            ex = exchange(error="read timeout after 30.0s", events=None)
        elif rid.startswith("stream."):
            ex = exchange(events=['{"choices":[{"index":0,"text":"hi","finish_reason":"stop"}]}', "[DONE]"])
        else:
            ex = exchange({"id": "cmpl-1", "object": "text_completion", "choices": [
                {"index": 0, "text": "EVIDENCE-TEXT-first", "finish_reason": "stop"},
                {"index": 0, "text": "second", "finish_reason": "stop"}]})
        evidence.append(Evidence(test=f"test_{rid.replace('.', '_')}", message=message, exchanges=[ex],
                                 details={"observed": [0, 0], "expected": [0, 1]}))
    elif status == Status.PASS:
        evidence.append(Evidence(test=f"test_{rid.replace('.', '_')}", exchanges=[exchange({"ok": True})]))
    return RequirementResult(
        id=rid,
        area=area,
        level=level,
        statement=f"The endpoint MUST satisfy {rid}.",
        source=Source(url="https://platform.openai.com/docs/api-reference/completions",
                      quote=f"quote for {rid}"),
        status=status,
        message=message,
        tests=[f"test_{rid.replace('.', '_')}"],
        duration_s=0.25,
        evidence=evidence,
    )


def make_report(
    overrides: dict[str, Status] | None = None,
    *,
    profile: str = "fireworks",
    base_url: str = "http://127.0.0.1:8000/v1",
    model: str = "tiny-gpt",
    drop: tuple[str, ...] = (),
    extra: tuple[tuple[str, str, Level, Status, str], ...] = (),
    messages: dict[str, str] | None = None,
) -> RunReport:
    overrides = overrides or {}
    messages = messages or {}
    results = []
    for rid, area, level, status, message in [*ROWS, *extra]:
        if rid in drop:
            continue
        status = overrides.get(rid, status)
        message = messages.get(rid, message if status != Status.PASS else "")
        results.append(make_result(rid, area, level, status, message))
    summary: dict[str, int] = {}
    for r in results:
        summary[r.status.value] = summary.get(r.status.value, 0) + 1
    must_ok = all(r.status in (Status.PASS, Status.NOT_APPLICABLE, Status.SKIP) for r in results if r.level == Level.MUST)
    assert SEVERITY  # vocabulary imported from the contract
    return RunReport(
        suite=SuiteInfo(version="0.1.0"),
        profile=ProfileInfo(id=profile, title=f"{profile} profile", source="builtin"),
        target=Target(base_url=base_url, model=model, chat_model=model + "-chat", context_length=2048),
        started_at="2025-01-02T03:04:05Z",
        duration_s=12.5,
        cost=Cost(requests=42, prompt_tokens=1000, completion_tokens=234),
        summary=summary,
        verdict=Status.PASS if must_ok else Status.FAIL,
        observed={"stop.output": "include", "stream.usage": {"final_chunk": True, "include_usage": False}},
        requirements=results,
    )


@pytest.fixture
def report() -> RunReport:
    return make_report()


@pytest.fixture
def report_factory() -> Callable[..., RunReport]:
    return make_report
