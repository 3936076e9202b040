"""Routes of the chat completions API (bodies are parsed by `validation.parse_body`, not FastAPI)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..protocol import ErrorResponse, request_body_schema
from ..validation import parse_body
from .protocol import ChatCompletionRequest, ChatCompletionResponse
from .serving import OpenAIServingChat

router = APIRouter(tags=["chat"])


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletionResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        400: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        429: {"model": ErrorResponse},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": request_body_schema(ChatCompletionRequest)}},
        }
    },
)
async def create_chat_completion(request: Request) -> Response:
    body = await parse_body(request, ChatCompletionRequest)
    serving: OpenAIServingChat = request.app.state.serving_chat
    return await serving.create(body, request)
