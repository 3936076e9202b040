"""GET /v1/models response models (OpenAPI Model, ListModelsResponse) plus `context_length`."""

from __future__ import annotations

from typing import Literal

from ..protocol import OpenAIBaseModel


class ModelCard(OpenAIBaseModel):
    id: str
    created: int
    object: Literal["model"] = "model"
    owned_by: str
    context_length: int  # extra: the context window in tokens (prompt + completion)


class ModelList(OpenAIBaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
