"""Helpers shared by the report renderers: status vocabulary, labels, evidence text, jinja2."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jinja2

from conformance.catalogue import AREAS
from conformance.results import SEVERITY, Exchange, Level, RequirementResult, RunReport, Status

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# Statuses that mean "the endpoint does not meet the requirement".
BAD = frozenset({Status.FAIL, Status.ERROR, Status.TIMEOUT})
STATUS_ORDER = [Status.FAIL, Status.ERROR, Status.TIMEOUT, Status.PASS, Status.SKIP, Status.NOT_APPLICABLE]
LEVEL_ORDER = {Level.MUST: 0, Level.SHOULD: 1, Level.MAY: 2}
STATUS_LABEL = {
    Status.PASS: "pass",
    Status.FAIL: "fail",
    Status.ERROR: "error",
    Status.TIMEOUT: "timeout",
    Status.SKIP: "skip",
    Status.NOT_APPLICABLE: "n/a",
}
STATUS_EMOJI = {
    Status.PASS: "✅",
    Status.FAIL: "❌",
    Status.ERROR: "💥",
    Status.TIMEOUT: "⏱️",
    Status.SKIP: "⏭️",
    Status.NOT_APPLICABLE: "➖",
}

EVIDENCE_LIMIT = 12_000  # characters of pretty JSON per request or response body
SENSITIVE_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "cookie", "set-cookie", "proxy-authorization"})
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]{4,}")


def area_rank(area: str) -> int:
    return AREAS.index(area) if area in AREAS else len(AREAS)


def by_area(results: Iterable[RequirementResult]) -> dict[str, list[RequirementResult]]:
    """Results grouped by area (areas in catalogue order, then unknown areas alphabetically)."""
    groups: dict[str, list[RequirementResult]] = {}
    for r in results:
        groups.setdefault(r.area, []).append(r)
    return {a: groups[a] for a in sorted(groups, key=lambda a: (area_rank(a), a))}


def is_expected(result: RequirementResult) -> bool:
    """A bad outcome that an expectations file predicted (any bad status counts as known)."""
    return result.status in BAD and result.expected is not None and result.expected in BAD


def is_unexpected_pass(result: RequirementResult) -> bool:
    return result.status == Status.PASS and result.expected is not None and result.expected in BAD


def failures_first(results: Iterable[RequirementResult]) -> list[RequirementResult]:
    """Bad results, new ones first, MUST before SHOULD before MAY, then by id."""
    bad = [r for r in results if r.status in BAD]
    return sorted(bad, key=lambda r: (is_expected(r), LEVEL_ORDER[r.level], -SEVERITY[r.status], r.id))


def target_host(report: RunReport) -> str:
    parsed = urlparse(report.target.base_url)
    return parsed.netloc or report.target.base_url


def target_label(report: RunReport) -> str:
    """`host / model / profile`, the column label of the matrix."""
    model = report.target.model or report.target.chat_model or "?"
    return f"{target_host(report)} / {model} / {report.profile.id}"


def counts(results: Iterable[RequirementResult]) -> dict[str, int]:
    out = {s.value: 0 for s in STATUS_ORDER}
    for r in results:
        out[r.status.value] += 1
    return out


def scrub(text: str) -> str:
    """Last line of defence: mask anything that looks like an OpenAI-style key (`sk-...`).

    Redaction is the client's job; this only guards the rendered reports.
    """
    return _KEY_PATTERN.sub(r"\1…REDACTED", text)


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    out = {}
    for k, v in headers.items():
        if k.lower() in SENSITIVE_HEADERS and "redacted" not in v.lower():
            scheme = v.split(" ", 1)[0] if " " in v else ""
            v = f"{scheme} <redacted>".strip()
        out[k] = v
    return out


def truncate(text: str, limit: int = EVIDENCE_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… truncated ({len(text) - limit} more characters)"


def pretty(value: Any, limit: int = EVIDENCE_LIMIT) -> str:
    """Pretty JSON (or the text itself), secrets masked, truncated to `limit` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return truncate(scrub(text), limit)


def request_text(exchange: Exchange, limit: int = EVIDENCE_LIMIT) -> str:
    req = exchange.request
    lines = [f"{req.method} {scrub(req.url)}"]
    lines += [f"{k}: {scrub(v)}" for k, v in redact_headers(req.headers).items()]
    body = pretty(req.body, limit)
    return "\n".join(lines) + ("\n\n" + body if body else "")


def response_text(exchange: Exchange, limit: int = EVIDENCE_LIMIT) -> str:
    resp = exchange.response
    parts: list[str] = []
    if resp is not None:
        head = f"HTTP {resp.status if resp.status is not None else '?'}"
        if resp.elapsed_s is not None:
            head += f"  ({resp.elapsed_s:.2f}s)"
        lines = [head] + [f"{k}: {scrub(v)}" for k, v in redact_headers(resp.headers).items()]
        parts.append("\n".join(lines))
        if resp.events is not None:
            events = "\n".join(f"data: {e}" for e in resp.events)
            parts.append(truncate(scrub(events), limit))
        elif resp.body is not None:
            parts.append(pretty(resp.body, limit))
    if exchange.error:
        parts.append(f"transport error: {scrub(exchange.error)}")
    return "\n\n".join(parts) if parts else "(no response)"


def observed_text(result: RequirementResult, limit: int = 2_000) -> str:
    """What was observed: the result message, plus each evidence message that adds something."""
    parts = [result.message] if result.message else []
    for ev in result.evidence:
        if ev.message and ev.message not in parts:
            parts.append(ev.message)
    return truncate(scrub("\n".join(parts)), limit)


def evidence_text(result: RequirementResult, limit: int = EVIDENCE_LIMIT) -> str:
    """All evidence of one result as plain text (JUnit system-out, Markdown details)."""
    blocks: list[str] = []
    for ev in result.evidence:
        blocks.append(f"== test: {ev.test}" + (f"\n{scrub(ev.message)}" if ev.message else ""))
        if ev.details:
            blocks.append("details:\n" + pretty(ev.details, limit))
        for i, ex in enumerate(ev.exchanges, 1):
            note = f" ({ex.note})" if ex.note else ""
            blocks.append(f"-- exchange {i}{note}: request\n{request_text(ex, limit)}")
            blocks.append(f"-- exchange {i}: response\n{response_text(ex, limit)}")
    return truncate("\n\n".join(blocks), limit * 4)


def source_href(url: str) -> str | None:
    """A clickable link for a source url (`https://...`), None for `seed:`/`openapi:` references."""
    return url if url.startswith(("http://", "https://")) else None


def anchor(requirement_id: str) -> str:
    return "req-" + re.sub(r"[^A-Za-z0-9_.-]", "-", requirement_id)


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes}m{sec:02d}s"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "run"


_env: jinja2.Environment | None = None


def html_env() -> jinja2.Environment:
    """The jinja2 environment for the HTML templates (autoescaping on)."""
    global _env
    if _env is None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.globals.update(
            anchor=anchor,
            source_href=source_href,
            status_label=lambda s: STATUS_LABEL[Status(s)],
            fmt_duration=fmt_duration,
            request_text=request_text,
            response_text=response_text,
            pretty=pretty,
            scrub=scrub,
            is_expected=is_expected,
            is_unexpected_pass=is_unexpected_pass,
        )
        _env = env
    return _env


def render_html(template: str, **context: Any) -> str:
    return html_env().get_template(template).render(**context)


def md_cell(text: Any) -> str:
    """Text safe inside a Markdown table cell (one line, pipes escaped)."""
    s = " ".join(str(text).split())
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def md_inline(text: Any) -> str:
    """Text safe in Markdown prose: HTML-ish characters escaped so nothing renders as markup."""
    return str(text).replace("<", "&lt;").replace(">", "&gt;")
