"""Routes of the chat completions API (bodies are parsed by `validation.parse_body`, not FastAPI)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..protocol import generation_route_docs
from ..validation import parse_body
from .protocol import ChatCompletionRequest, ChatCompletionResponse
from .serving import OpenAIServingChat

router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse, **generation_route_docs(ChatCompletionRequest))
async def create_chat_completion(request: Request) -> Response:
    body = await parse_body(request, ChatCompletionRequest)
    serving: OpenAIServingChat = request.app.state.serving_chat
    return await serving.create(body, request)
