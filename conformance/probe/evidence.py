"""What the probe concludes per axis or observation, with the exchanges it rests on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from conformance.results import Exchange

INFERRED = "inferred"
UNKNOWN = "unknown"  # no conclusion: the OpenAI value is written instead
INCONSISTENT = "inconsistent"  # contradictory answers: the OpenAI value is written instead

EVIDENCE_LINE = 200


@dataclass
class Inference:
    """One axis (or observation): the value written, how sure, why, and the exchanges seen."""

    name: str
    value: str
    status: str = INFERRED  # inferred | unknown | inconsistent
    reason: str = ""  # one line
    caveat: str = ""  # one line, optional
    exchanges: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        unique: dict[int, Exchange] = {}
        for exchange in self.exchanges:  # shared baselines may be listed twice
            unique.setdefault(id(exchange), exchange)
        self.exchanges = list(unique.values())

    @property
    def inferred(self) -> bool:
        return self.status == INFERRED

    def evidence(self) -> list[str]:
        return [summarize(e) for e in self.exchanges]

    def line(self) -> str:
        """`value (status) — reason; caveat` on one line."""
        head = self.value if self.inferred else f"{self.value} ({self.status}: OpenAI value used)"
        text = f"{head} — {self.reason}" if self.reason else head
        if self.caveat:
            text += f"; {self.caveat}"
        return one_line(text, 400)

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "status": self.status, "reason": self.reason, "caveat": self.caveat,
                "evidence": self.evidence()}


def one_line(text: Any, limit: int = EVIDENCE_LINE) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def divergence(before: str, after: str, width: int = 24) -> str:
    """`…common tail|before… -> …|after…` from the first differing character (for 'output changed')."""
    at = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), min(len(before), len(after)))
    start = max(0, at - 8)
    lead = "…" if start else ""
    return f"{lead}{before[start:at + width]!r} -> {lead}{after[start:at + width]!r} (from character {at})"


def _short(value: Any, limit: int = 48) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return one_line(text if len(text) <= limit else text[: limit - 1] + "…", limit + 4)


def _request_summary(body: Any) -> str:
    if not isinstance(body, dict):
        return _short(body) if body is not None else ""
    parts = []
    for key, value in body.items():
        if key in ("model", "prompt", "messages"):
            continue
        parts.append(f"{key}={_short(value, 40)}")
    return " ".join(parts)


def _response_summary(exchange: Exchange) -> str:
    resp = exchange.response
    if resp is None:
        return f"no response ({exchange.error})" if exchange.error else "no response"
    if resp.events is not None:
        chunks = [e for e in resp.events if e != "[DONE]"]
        done = "[DONE]" in resp.events
        usage_at = [i for i, e in enumerate(chunks) if '"usage":{' in e.replace(" ", "")]
        where = f", usage in chunk(s) {usage_at}" if usage_at else ", no usage"
        return f"{resp.status} stream: {len(chunks)} chunks{where}, {'[DONE]' if done else 'no [DONE]'}"
    body = resp.body
    if resp.status == 200 and isinstance(body, dict):
        choices: list[Any] = body["choices"] if isinstance(body.get("choices"), list) else []
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        if "message" in first:
            message = first.get("message") or {}
            content: Any = message.get("content") if isinstance(message, dict) else None
            calls = isinstance(message, dict) and (message.get("function_call") or message.get("tool_calls"))
            if calls:
                content = f"<call {_short(calls, 40)}>"
        else:
            content = first.get("text")
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        tokens = f", {usage.get('prompt_tokens')}+{usage.get('completion_tokens')} tokens" if usage else ""
        n = f", {len(choices)} choices" if len(choices) != 1 else ""
        shown = _short(repr(content) if isinstance(content, str) else content)
        return f"200 {shown} finish={first.get('finish_reason')}{n}{tokens}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        bits = [f"{k}={err.get(k)}" for k in ("code", "param") if err.get(k)]
        return f"{resp.status} {' '.join(bits)} {_short(err.get('message'), 80)}".strip()
    return f"{resp.status} {_short(body, 80)}"


def summarize(exchange: Exchange) -> str:
    """One line: `POST /completions stop=["fox"] -> 200 "text" finish=stop, 4+3 tokens`."""
    req = exchange.request
    path = req.url.split("/v1", 1)[-1] if "/v1" in req.url else req.url
    request = f"{req.method} {path} {_request_summary(req.body)}".strip()
    note = " (cached)" if exchange.note and "(cached" in exchange.note else ""
    return one_line(f"{request} -> {_response_summary(exchange)}{note}", EVIDENCE_LINE)
