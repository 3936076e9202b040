"""POST /v1/completions request and response models (OpenAPI CreateCompletionRequest/Response)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..protocol import OpenAIBaseModel, StreamOptions, UsageInfo


class CompletionRequest(OpenAIBaseModel):
    # OpenAPI CreateCompletionRequest, in its order.
    model: str
    # string, array of strings, array of token ids, or array of token-id arrays (checked in serving).
    prompt: Any = Field(...)
    best_of: int | None = Field(default=None, ge=0, le=20)
    echo: bool | None = False
    frequency_penalty: float | None = Field(default=0, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    max_tokens: int | None = 16
    n: int | None = Field(default=1, ge=1, le=128)
    presence_penalty: float | None = Field(default=0, ge=-2, le=2)
    seed: int | None = None
    stop: Any = None  # string or array of 1-4 strings (checked in serving)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = Field(default=1, ge=0, le=2)
    top_p: float | None = Field(default=1, ge=0, le=1)
    user: str | None = None
    # Provider extras (Fireworks, vLLM).
    top_k: int | None = Field(default=None, ge=0)
    ignore_eos: bool | None = False
    context_length_exceeded_behavior: str | None = None


class CompletionLogprobs(OpenAIBaseModel):
    text_offset: list[int] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    tokens: list[str] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)


class CompletionChoice(OpenAIBaseModel):
    finish_reason: Literal["stop", "length", "content_filter"] | None
    index: int
    logprobs: CompletionLogprobs | None = None
    text: str


class CompletionResponse(OpenAIBaseModel):
    id: str
    choices: list[CompletionChoice]
    created: int
    model: str
    system_fingerprint: str
    object: Literal["text_completion"] = "text_completion"
    usage: UsageInfo | None = None
