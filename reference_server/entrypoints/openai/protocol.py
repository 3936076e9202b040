"""Pydantic models shared by the endpoints (fields in the order of OpenAI's OpenAPI description)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


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
