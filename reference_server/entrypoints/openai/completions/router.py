"""Routes of the completions API (bodies are parsed by `validation.parse_body`, not FastAPI)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..protocol import ErrorResponse, request_body_schema
from ..validation import parse_body
from .protocol import CompletionRequest, CompletionResponse
from .serving import OpenAIServingCompletion

router = APIRouter(tags=["completions"])


@router.post(
    "/v1/completions",
    response_model=CompletionResponse,
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
            "content": {"application/json": {"schema": request_body_schema(CompletionRequest)}},
        }
    },
)
async def create_completion(request: Request) -> Response:
    body = await parse_body(request, CompletionRequest)
    serving: OpenAIServingCompletion = request.app.state.serving_completion
    return await serving.create(body, request)
