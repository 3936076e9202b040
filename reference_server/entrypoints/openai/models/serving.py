"""GET /v1/models and /v1/models/{model}: the one model this server serves."""

from __future__ import annotations

from typing import Any

from reference_server.config import ServerConfig

from ..errors import model_not_found
from .protocol import ModelCard, ModelList


class OpenAIServingModels:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    def card(self) -> ModelCard:
        cfg = self.config
        return ModelCard(id=cfg.model_id, created=cfg.created, owned_by=cfg.owned_by, context_length=cfg.context_length)

    def list_models(self) -> dict[str, Any]:
        return ModelList(data=[self.card()]).model_dump()

    def retrieve(self, model: str) -> dict[str, Any]:
        if model != self.config.model_id:
            raise model_not_found(model)
        return self.card().model_dump()
