"""POST /v1/chat/completions request and response models (OpenAPI CreateChatCompletionRequest/Response)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from ..protocol import OpenAIBaseModel, StreamOptions, UsageInfo


class ChatMessage(OpenAIBaseModel):
    """One of the ChatCompletionRequest*Message variants; `role` selects which (checked in serving)."""

    model_config = ConfigDict(extra="allow")  # extra message keys reach the chat template

    role: str
    content: Any = None  # string, array of content parts, or null (assistant)
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    function_call: dict[str, Any] | None = None


class ChatCompletionRequest(OpenAIBaseModel):
    # Required fields first, then OpenAPI CreateChatCompletionRequest's order.
    messages: list[ChatMessage] = Field(..., min_length=1)
    model: str
    metadata: dict[str, str] | None = None
    temperature: float | None = Field(default=1, ge=0, le=2)
    top_p: float | None = Field(default=1, ge=0, le=1)
    user: str | None = None
    max_completion_tokens: int | None = None
    frequency_penalty: float | None = Field(default=0, ge=-2, le=2)
    presence_penalty: float | None = Field(default=0, ge=-2, le=2)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    store: bool | None = False
    stream: bool | None = False
    stop: Any = None  # string or array of 1-4 strings (checked in serving)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = False
    max_tokens: int | None = None
    n: int | None = Field(default=1, ge=1, le=128)
    seed: int | None = None
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    function_call: Any = None
    functions: list[dict[str, Any]] | None = None
    # Provider extras (Fireworks, vLLM).
    top_k: int | None = Field(default=None, ge=0)
    ignore_eos: bool | None = False
    context_length_exceeded_behavior: str | None = None


class TopLogprob(OpenAIBaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(OpenAIBaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(OpenAIBaseModel):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class ChatCompletionMessage(OpenAIBaseModel):
    content: str | None
    refusal: str | None = None
    role: Literal["assistant"] = "assistant"


class ChatCompletionChoice(OpenAIBaseModel):
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
    index: int
    message: ChatCompletionMessage
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionResponse(OpenAIBaseModel):
    id: str
    choices: list[ChatCompletionChoice]
    created: int
    model: str
    system_fingerprint: str
    object: Literal["chat.completion"] = "chat.completion"
    usage: UsageInfo | None = None


class DeltaMessage(OpenAIBaseModel):
    content: str | None = None
    role: Literal["assistant"] | None = None


class ChatCompletionStreamChoice(OpenAIBaseModel):
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "function_call"] | None = None
    index: int


class ChatCompletionStreamResponse(OpenAIBaseModel):
    id: str
    choices: list[ChatCompletionStreamChoice]
    created: int
    model: str
    system_fingerprint: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    usage: UsageInfo | None = None
