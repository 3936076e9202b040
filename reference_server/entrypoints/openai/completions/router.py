"""Routes of the completions API (bodies are parsed by `validation.parse_body`, not FastAPI)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..protocol import generation_route_docs
from ..validation import parse_body
from .protocol import CompletionRequest, CompletionResponse
from .serving import OpenAIServingCompletion

router = APIRouter(tags=["completions"])


@router.post("/v1/completions", response_model=CompletionResponse, **generation_route_docs(CompletionRequest))
async def create_completion(request: Request) -> Response:
    body = await parse_body(request, CompletionRequest)
    serving: OpenAIServingCompletion = request.app.state.serving_completion
    return await serving.create(body, request)
