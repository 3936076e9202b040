"""Request body parsing: Content-Type, JSON, and pydantic errors turned into OpenAI 400s naming `param`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from .errors import APIError, invalid_request

M = TypeVar("M", bound=BaseModel)

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "list_type": "an array",
    "tuple_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "none_required": "null",
}


def json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def param_path(loc: Sequence[Any]) -> str | None:
    """("messages", 0, "content") -> "messages[0].content"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or None


def api_error_from_pydantic(errors: Sequence[Any]) -> APIError:
    """The first pydantic error as an OpenAI invalid_request_error naming the offending field."""
    err: dict[str, Any] = dict(errors[0]) if errors else {"type": "value_error", "loc": (), "msg": "Invalid request."}
    loc = [p for p in err.get("loc", ()) if p not in ("body",)]
    param = param_path(loc)
    kind = str(err.get("type", ""))
    name = param or "body"
    value = err.get("input")
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    if kind == "missing":
        return invalid_request(f"Missing required parameter: '{name}'.", param, "missing_required_parameter")
    if kind in _EXPECTED:
        if not loc:
            return invalid_request("The request body must be a JSON object.", None, "invalid_type")
        return invalid_request(
            f"Invalid type for '{name}': expected {_EXPECTED[kind]}, but got {json_type_name(value)} instead.",
            param,
            "invalid_type",
        )
    if kind in ("less_than_equal", "less_than", "greater_than_equal", "greater_than"):
        number = "integer" if isinstance(value, int) else "decimal"
        above = kind.startswith("less")
        bound = next(iter(ctx.values()), None)
        op = {"less_than_equal": "<=", "less_than": "<", "greater_than_equal": ">=", "greater_than": ">"}[kind]
        return invalid_request(
            f"Invalid '{name}': {number} {'above maximum' if above else 'below minimum'} value. "
            f"Expected a value {op} {bound}, but got {value} instead.",
            param,
            f"{number}_{'above_max' if above else 'below_min'}_value",
        )
    if kind in ("too_long", "too_short"):
        longer = kind == "too_long"
        bound = ctx.get("max_length" if longer else "min_length")
        return invalid_request(
            f"Invalid '{name}': array too {'long' if longer else 'short'}. Expected an array with "
            f"{'maximum' if longer else 'minimum'} length {bound}, but got an array with length "
            f"{ctx.get('actual_length', '?')} instead.",
            param,
            f"array_{'above_max' if longer else 'below_min'}_length",
        )
    if kind == "literal_error":
        return invalid_request(
            f"Invalid value for '{name}': {value!r}. Supported values are: {ctx.get('expected')}.",
            param,
            "invalid_value",
        )
    if kind == "json_invalid":
        return invalid_request(
            "We could not parse the JSON body of your request. The API expects a JSON payload, "
            f"but what was sent was not valid JSON ({ctx.get('error', 'syntax error')}).",
            None,
            None,
        )
    # Custom errors raised by our validators carry an OpenAI code as their type.
    msg = str(err.get("msg", "Invalid value."))
    if kind in ("value_error", "assertion_error"):
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return invalid_request(f"Invalid value for '{name}': {msg}", param, "invalid_value")
    return invalid_request(msg, param, kind or None)


def check_content_type(request: Request) -> None:
    raw = request.headers.get("content-type")
    media = (raw or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        shown = f"'{raw}'" if raw else "missing"
        raise APIError(
            400,
            f"Invalid Content-Type header ({shown}); expected 'application/json'.",
            param=None,
            code="invalid_content_type",
        )


async def parse_body(request: Request, model: type[M]) -> M:
    """Check Content-Type, read the (size-limited) body and validate it strictly against `model`."""
    check_content_type(request)
    body = await request.body()
    if not body.strip():
        raise invalid_request("The request body is empty; expected a JSON object.", None, None)
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise api_error_from_pydantic(exc.errors(include_url=False)) from None
