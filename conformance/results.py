"""Outcome vocabulary shared by checks, the runner and every report.

Checks raise typed exceptions; the runner turns them into `RequirementResult`s;
reports only ever read `RunReport` (or its JSON form, validated by
`schemas/report.results.json`). Nothing downstream re-runs logic.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, Field, computed_field


class Status(str, enum.Enum):
    """web-platform-tests style statuses; NOT_APPLICABLE is distinct from SKIP."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # the endpoint misbehaved in a way that prevented the check (bad JSON, reset, 5xx...)
    TIMEOUT = "timeout"
    SKIP = "skip"  # the suite chose not to run it (--only, missing prerequisite such as node)
    NOT_APPLICABLE = "not_applicable"  # the profile says it does not apply / optional feature missing


# When one requirement is verified several times, the worst outcome wins.
SEVERITY = {
    Status.FAIL: 6,
    Status.ERROR: 5,
    Status.TIMEOUT: 4,
    Status.PASS: 3,
    Status.SKIP: 2,
    Status.NOT_APPLICABLE: 1,
}


class Level(str, enum.Enum):
    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"


class HttpRequestRecord(BaseModel):
    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)  # redacted
    body: Any = None  # parsed JSON when it was JSON, else text (truncated)


class HttpResponseRecord(BaseModel):
    status: int | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None  # parsed JSON, or text (truncated) when not JSON
    events: list[str] | None = None  # raw SSE `data:` payloads, in order (truncated)
    elapsed_s: float | None = None


class Exchange(BaseModel):
    """One request/response pair, with secrets already redacted."""

    request: HttpRequestRecord
    response: HttpResponseRecord | None = None
    error: str | None = None  # transport-level problem: timeout, reset, broken framing
    note: str | None = None  # what this exchange was for, e.g. "greedy baseline without stop"


class Evidence(BaseModel):
    test: str
    message: str = ""
    exchanges: list[Exchange] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)  # observed vs expected values


class CheckFailure(Exception):
    """A requirement was checked and the endpoint does not meet it."""

    status = Status.FAIL

    def __init__(self, requirement: str, message: str, **details: Any) -> None:
        super().__init__(f"{requirement}: {message}")
        self.requirement = requirement
        self.message = message
        self.details = details


class EndpointError(CheckFailure):
    """The endpoint broke the exchange itself (5xx, malformed JSON, bad SSE framing, reset)."""

    status = Status.ERROR


class EndpointTimeout(CheckFailure):
    status = Status.TIMEOUT


class NotApplicable(Exception):
    """The requirement cannot apply to this target (no context length known, optional feature absent)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Skipped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Source(BaseModel):
    url: str
    quote: str


class RequirementResult(BaseModel):
    id: str
    area: str
    level: Level
    statement: str
    source: Source
    status: Status
    expected: Status | None = None  # from an expectations file (known failure), reports compare the two
    message: str = ""
    tests: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    evidence: list[Evidence] = Field(default_factory=list)


class Cost(BaseModel):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Target(BaseModel):
    base_url: str
    model: str | None = None
    chat_model: str | None = None
    context_length: int | None = None
    embedded: bool = False  # the run started the reference server itself


class SuiteInfo(BaseModel):
    name: str = "openai-conformance"
    version: str


class ProfileInfo(BaseModel):
    id: str
    title: str = ""
    source: str = ""  # "builtin" or the file path given


class RunReport(BaseModel):
    """The contents of results.json (see schemas/report.results.json)."""

    schema_version: int = 1
    suite: SuiteInfo
    profile: ProfileInfo
    target: Target
    started_at: str  # ISO 8601, UTC
    duration_s: float
    cost: Cost
    summary: dict[str, int] = Field(default_factory=dict)  # status -> count
    verdict: Status  # PASS when every applicable MUST passes
    observed: dict[str, Any] = Field(default_factory=dict)  # observed behaviour per axis (probe)
    requirements: list[RequirementResult]
