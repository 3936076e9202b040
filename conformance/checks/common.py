"""Checks shared by every area: JSON Schema validity, HTTP status, the OpenAI error envelope."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conformance import schemas
from conformance.results import CheckFailure


def clip(value: Any, limit: int = 300) -> str:
    """A short printable form of a value for messages (repr for strings, so whitespace shows)."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def valid_against(req: str, schema_name: str, payload: Any, overlay: str | None = None) -> None:
    """The payload validates against `schemas/<schema_name>.json` (narrowed by `overlay`).

    Why: clients (the openai SDKs, LangChain...) parse these shapes; a missing or mistyped field breaks them.
    """
    errors = schemas.validate(schema_name, payload, overlay=overlay)
    if errors:
        label = schema_name + (f" + {overlay} overlay" if overlay else "")
        raise CheckFailure(
            req,
            f"payload does not match the {label} schema: {'; '.join(errors[:5])}"
            + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""),
            observed=payload, expected=f"valid {label}", errors=errors[:20],
        )


def _statuses(status: int | Iterable[int]) -> tuple[int, ...]:
    return (status,) if isinstance(status, int) else tuple(status)


def status_ok(req: str, response: Any) -> None:
    """HTTP 200 with a JSON object body. Why: the request was valid, so the endpoint must serve it."""
    if response.status != 200:
        raise CheckFailure(
            req, f"expected HTTP 200 for a valid request, got {response.status}: {clip(response.json or response.text)}",
            observed=response.status, expected=200, body=response.json if response.json is not None else response.text,
        )
    if not isinstance(response.json, dict):
        raise CheckFailure(req, f"HTTP 200 but the body is not a JSON object: {clip(response.text)}",
                           observed=response.text, expected="a JSON object")


def is_openai_error(
    req: str,
    response: Any,
    status: int | Iterable[int] = 400,
    *,
    code: str | Iterable[str] | None = None,
    param: str | Iterable[str] | None = None,
    error_type: str | None = None,
) -> None:
    """The response is an error with one of the expected statuses and an OpenAI-shaped body.

    `code`/`param`/`error_type`, when given, must match (a collection means any of). Why: clients branch
    on status and on error.type/param/code; a 200, a 500 or a framework body ({"detail": ...}) breaks them.
    """
    wanted = _statuses(status)
    body = response.json
    if response.status not in wanted:
        raise CheckFailure(
            req,
            f"expected HTTP {' or '.join(map(str, wanted))} with an OpenAI error, got {response.status}: "
            f"{clip(body if body is not None else response.text)}",
            observed=response.status, expected=list(wanted), body=body if body is not None else response.text,
        )
    errors = schemas.validate("error", body) if body is not None else ["body is not JSON"]
    if errors:
        raise CheckFailure(
            req,
            f"HTTP {response.status} as expected, but the body is not an OpenAI error envelope "
            f"{{\"error\": {{message, type, param, code}}}}: {'; '.join(errors[:3])}; body {clip(body if body is not None else response.text)}",
            observed=body if body is not None else response.text, expected="error envelope",
        )
    error = body["error"]
    if not str(error.get("message") or "").strip():
        raise CheckFailure(req, "error.message is empty", observed=error, expected="a non-empty message")
    for key, expected in (("type", error_type), ("code", code), ("param", param)):
        if expected is None:
            continue
        allowed = (expected,) if isinstance(expected, str) else tuple(expected)
        if error.get(key) not in allowed:
            raise CheckFailure(
                req,
                f"error.{key} is {error.get(key)!r}; expected {' or '.join(map(repr, allowed))} "
                f"(message: {clip(error.get('message'))})",
                observed=error.get(key), expected=list(allowed), error=error,
            )


def equal(req: str, what: str, observed: Any, expected: Any) -> None:
    """observed == expected, with a message naming `what`. Why: used where two observations must agree."""
    if observed != expected:
        raise CheckFailure(req, f"{what}: expected {clip(expected)}, observed {clip(observed)}",
                           observed=observed, expected=expected)
