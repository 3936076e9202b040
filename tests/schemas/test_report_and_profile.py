"""schemas/report.results.json matches RunReport.model_dump(mode="json"); schemas/profile.json matches profiles."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import schemas
from conformance.profiles import AXES, PROFILES_DIR
from conformance.results import (
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


def full_report() -> RunReport:
    exchange = Exchange(
        request=HttpRequestRecord(
            method="POST",
            url="http://127.0.0.1:8000/v1/completions",
            headers={"authorization": "Bearer <redacted>", "content-type": "application/json"},
            body={"model": "tiny", "prompt": "The quick brown fox", "stop": ["fox"], "stream": True},
        ),
        response=HttpResponseRecord(
            status=200,
            headers={"content-type": "text/event-stream"},
            body=None,
            events=['{"id":"cmpl-1","object":"text_completion"}', "[DONE]"],
            elapsed_s=0.42,
        ),
        note="greedy baseline without stop",
    )
    failed = Exchange(
        request=HttpRequestRecord(method="GET", url="http://127.0.0.1:8000/v1/models"),
        error="connection reset by peer",
    )
    return RunReport(
        suite=SuiteInfo(version="0.1.0"),
        profile=ProfileInfo(id="fireworks", title="Fireworks AI", source="builtin"),
        target=Target(
            base_url="http://127.0.0.1:8000/v1",
            model="tiny",
            chat_model="tiny-chat",
            context_length=2048,
            embedded=True,
        ),
        started_at="2025-01-02T03:04:05+00:00",
        duration_s=12.5,
        cost=Cost(requests=3, prompt_tokens=30, completion_tokens=12),
        summary={"pass": 1, "fail": 1, "not_applicable": 1},
        verdict=Status.FAIL,
        observed={"stop.output": "include", "stream.usage": "final_chunk"},
        requirements=[
            RequirementResult(
                id="stop.included",
                area="stop",
                level=Level.MUST,
                statement="The returned text MUST end with the stop sequence.",
                source=Source(url="seed:fireworks-openai-compatibility.txt", quote="includes the stop word"),
                status=Status.FAIL,
                expected=Status.FAIL,
                message="text did not end with 'fox'",
                tests=["stop.single_string"],
                duration_s=0.8,
                evidence=[
                    Evidence(
                        test="stop.single_string",
                        message="observed ' jumps'",
                        exchanges=[exchange, failed],
                        details={"expected": "fox", "observed": " jumps"},
                    )
                ],
            ),
            RequirementResult(
                id="usage.stream_final_chunk",
                area="usage",
                level=Level.SHOULD,
                statement="...",
                source=Source(url="openapi:CompletionUsage", quote="usage"),
                status=Status.PASS,
            ),
            RequirementResult(
                id="errors.envelope",
                area="errors",
                level=Level.MAY,
                statement="...",
                source=Source(url="openapi:Error", quote="error"),
                status=Status.NOT_APPLICABLE,
            ),
        ],
    )


def minimal_report() -> RunReport:
    return RunReport(
        suite=SuiteInfo(version="0.1.0"),
        profile=ProfileInfo(id="openai"),
        target=Target(base_url="https://api.openai.com/v1"),
        started_at="2025-01-02T03:04:05Z",
        duration_s=0.0,
        cost=Cost(),
        verdict=Status.PASS,
        requirements=[],
    )


@pytest.mark.parametrize("make", [full_report, minimal_report])
def test_run_report_validates(make: Any) -> None:
    assert schemas.validate("report.results", make().model_dump(mode="json")) == []


def test_every_status_and_level_validates() -> None:
    report = full_report()
    for status in Status:
        for level in Level:
            report.requirements[0].status = status
            report.requirements[0].level = level
            report.verdict = status
            assert schemas.validate("report.results", report.model_dump(mode="json")) == []


def test_schema_enums_match_the_models() -> None:
    defs = schemas.schema("report.results")["$defs"]
    assert defs["status"]["enum"] == [s.value for s in Status]
    assert defs["level"]["enum"] == [v.value for v in Level]


def test_schema_fields_match_the_models() -> None:
    """Every field the models dump is required by the schema, and nothing else is allowed."""
    doc = schemas.schema("report.results")
    defs = doc["$defs"]
    models: dict[str, Any] = {
        "suite": SuiteInfo,
        "profile": ProfileInfo,
        "target": Target,
        "cost": Cost,
        "source": Source,
        "requirement": RequirementResult,
        "evidence": Evidence,
        "exchange": Exchange,
        "http_request": HttpRequestRecord,
        "http_response": HttpResponseRecord,
    }
    pairs = [(doc, RunReport)] + [(defs[name], model) for name, model in models.items()]
    for schema, model in pairs:
        fields = set(model.model_fields) | set(model.model_computed_fields)
        assert set(schema["properties"]) == fields, model.__name__
        assert set(schema["required"]) == fields, model.__name__
        assert schema["additionalProperties"] is False, model.__name__


def _bad_status(d: dict[str, Any]) -> None:
    d["requirements"][0]["status"] = "passed"


def _bad_verdict(d: dict[str, Any]) -> None:
    d["verdict"] = "PASS"


def _bad_level(d: dict[str, Any]) -> None:
    d["requirements"][0]["level"] = "must"


def _bad_expected(d: dict[str, Any]) -> None:
    d["requirements"][0]["expected"] = "xfail"


def _missing_total_tokens(d: dict[str, Any]) -> None:
    del d["cost"]["total_tokens"]


def _extra_field(d: dict[str, Any]) -> None:
    d["requirements"][0]["severity"] = "high"


def _events_not_strings(d: dict[str, Any]) -> None:
    d["requirements"][0]["evidence"][0]["exchanges"][0]["response"]["events"] = [{"id": "cmpl-1"}]


def _missing_source_quote(d: dict[str, Any]) -> None:
    del d["requirements"][0]["source"]["quote"]


def _schema_version_2(d: dict[str, Any]) -> None:
    d["schema_version"] = 2


def _summary_count_string(d: dict[str, Any]) -> None:
    d["summary"]["pass"] = "1"


REPORT_NEAR_MISSES = [
    ("bad status string", _bad_status, "$.requirements[0].status"),
    ("verdict in capitals", _bad_verdict, "$.verdict"),
    ("level in lower case", _bad_level, "$.requirements[0].level"),
    ("unknown expected status", _bad_expected, "$.requirements[0].expected"),
    ("cost without computed total_tokens", _missing_total_tokens, "$.cost"),
    ("unknown requirement field", _extra_field, "$.requirements[0]"),
    (
        "SSE events not strings",
        _events_not_strings,
        "$.requirements[0].evidence[0].exchanges[0].response.events[0]",
    ),
    ("source without quote", _missing_source_quote, "$.requirements[0].source"),
    ("unknown schema_version", _schema_version_2, "$.schema_version"),
    ("summary count as a string", _summary_count_string, "$.summary.pass"),
]


@pytest.mark.parametrize(
    ("mutate", "where"), [c[1:] for c in REPORT_NEAR_MISSES], ids=[c[0] for c in REPORT_NEAR_MISSES]
)
def test_report_near_miss_is_rejected(mutate: Any, where: str) -> None:
    data = copy.deepcopy(full_report().model_dump(mode="json"))
    mutate(data)
    errors = schemas.validate("report.results", data)
    assert any(e.startswith(f"{where}: ") for e in errors), errors


# ---------------------------------------------------------------- profile.json

PROFILE_FILES = sorted(PROFILES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_builtin_profiles_validate(path: Path) -> None:
    assert schemas.validate("profile", yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def test_profile_axes_match_the_code() -> None:
    behaviour = schemas.schema("profile")["properties"]["behaviour"]
    assert set(behaviour["required"]) == set(AXES)
    assert {axis: tuple(s["enum"]) for axis, s in behaviour["properties"].items()} == AXES


def _profile() -> dict[str, Any]:
    return yaml.safe_load((PROFILES_DIR / "fireworks.yaml").read_text(encoding="utf-8"))


def test_profile_with_override_validates() -> None:
    profile = _profile()
    profile["requirements"] = {
        "stream.usage_final_chunk": {"status": "not_applicable", "reason": "no streaming"}
    }
    assert schemas.validate("profile", profile) == []


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("behaviour", "stop.output"), "included", "$.behaviour['stop.output']"),
        (("behaviour", "stream.usage"), None, "$.behaviour['stream.usage']"),
        (("behaviour", "params.top_k"), "supported", "$.behaviour"),
        (("requirements",), {"stream.x": {"status": "passed"}}, "$.requirements['stream.x'].status"),
        (("requirements",), {"stream.x": {"reason": "no status"}}, "$.requirements['stream.x']"),
        (("requirements",), {"noarea": {"status": "skip"}}, "$.requirements"),
        (("id",), 7, "$.id"),
        (("extra",), True, "$"),
    ],
    ids=[
        "unknown axis value",
        "axis value null",
        "unknown axis",
        "bad override status",
        "override without status",
        "override id without area",
        "id not a string",
        "unknown top-level key",
    ],
)
def test_profile_near_miss_is_rejected(path: tuple[str, ...], value: Any, where: str) -> None:
    profile = _profile()
    target = profile
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = schemas.validate("profile", profile)
    assert any(e.startswith(f"{where}: ") for e in errors), errors


def test_profile_missing_axis_is_rejected() -> None:
    profile = _profile()
    del profile["behaviour"]["stream.usage"]
    assert schemas.validate("profile", profile) == ["$.behaviour: 'stream.usage' is a required property"]
