"""Routes of the models API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..protocol import ErrorResponse
from .protocol import ModelCard, ModelList
from .serving import OpenAIServingModels

router = APIRouter(tags=["models"])


def _serving(request: Request) -> OpenAIServingModels:
    serving: OpenAIServingModels = request.app.state.serving_models
    return serving


@router.get("/v1/models", response_model=ModelList, responses={401: {"model": ErrorResponse}})
async def list_models(request: Request) -> Any:
    return _serving(request).list_models()


@router.get(
    "/v1/models/{model:path}",
    response_model=ModelCard,
    responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def retrieve_model(model: str, request: Request) -> Any:
    return _serving(request).retrieve(model)
