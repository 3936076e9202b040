"""Pydantic models shared by the endpoints (fields in the order of OpenAI's OpenAPI description)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def request_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON Schema with its `$defs` inlined, for an OpenAPI requestBody.

    Pydantic's `#/$defs/X` references would resolve against the root of the OpenAPI document,
    where there is no `$defs`: the description would be unusable by schema-driven clients.
    """
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any, depth: int = 0) -> Any:
        if isinstance(node, list):
            return [inline(x, depth) for x in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 8:
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return inline({**defs[ref.removeprefix("#/$defs/")], **rest}, depth + 1)
        return {k: inline(v, depth) for k, v in node.items()}

    out: dict[str, Any] = inline(schema)
    return out


class OpenAIBaseModel(BaseModel):
    # Clients send fields this server does not know (newer API fields, other providers' extras):
    # they are accepted and ignored.
    model_config = ConfigDict(extra="ignore")


class StreamOptions(OpenAIBaseModel):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class PromptTokensDetails(OpenAIBaseModel):
    cached_tokens: int = 0


class UsageInfo(OpenAIBaseModel):
    completion_tokens: int = 0
    prompt_tokens: int = 0
    total_tokens: int = 0


class ErrorInfo(OpenAIBaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(OpenAIBaseModel):
    error: ErrorInfo


def usage_dict(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return UsageInfo(
        completion_tokens=completion_tokens,
        prompt_tokens=prompt_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    ).model_dump()


def generation_route_docs(request_model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI metadata shared by the generation routes: error responses and the inlined request body.

    The routes parse their bodies themselves (to answer OpenAI-shaped 400s), so FastAPI cannot
    infer the request body; this describes it for /openapi.json.
    """
    return {
        "responses": {
            200: {"content": {"text/event-stream": {}}},
            **{status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 429)},
        },
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request_body_schema(request_model)}},
            }
        },
    }
