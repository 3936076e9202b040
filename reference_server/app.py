"""`create_app(config) -> FastAPI`: the OpenAI-compatible HTTP API over one engine and one profile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from reference_server.config import SERVER_VERSION, ServerConfig
from reference_server.entrypoints.openai.auth import APIKeyMiddleware
from reference_server.entrypoints.openai.chat.router import router as chat_router
from reference_server.entrypoints.openai.chat.serving import OpenAIServingChat
from reference_server.entrypoints.openai.completions.router import router as completions_router
from reference_server.entrypoints.openai.completions.serving import OpenAIServingCompletion
from reference_server.entrypoints.openai.errors import install_exception_handlers
from reference_server.entrypoints.openai.limits import BodyLimitMiddleware
from reference_server.entrypoints.openai.models.router import router as models_router
from reference_server.entrypoints.openai.models.serving import OpenAIServingModels


def create_app(config: ServerConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if config.manage_engine:
            await config.engine.start()
        try:
            yield
        finally:
            if config.manage_engine:
                await config.engine.stop()

    app = FastAPI(
        title="reference-server",
        version=SERVER_VERSION,
        description=(
            "Reference implementation of the OpenAI-compatible HTTP API, following the "
            f"'{config.profile.id}' behaviour profile ({config.profile.title})."
        ),
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.serving_completion = OpenAIServingCompletion(config)
    app.state.serving_chat = OpenAIServingChat(config)
    app.state.serving_models = OpenAIServingModels(config)

    install_exception_handlers(app)
    app.include_router(completions_router)
    app.include_router(chat_router)
    app.include_router(models_router)

    @app.get("/health", tags=["health"])
    async def health(request: Request) -> dict[str, Any]:
        engine = config.engine
        metrics_fn = getattr(engine, "metrics", None)
        metrics = metrics_fn() if callable(metrics_fn) else None
        as_dict = getattr(metrics, "as_dict", None)
        return {
            "status": "ok",
            "model": config.model_id,
            "profile": config.profile.id,
            "device": getattr(engine, "device", None),
            "dtype": getattr(engine, "dtype", None),
            "engine": as_dict() if callable(as_dict) else metrics,
        }

    # Added last = outermost: the key is checked before the body is read.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.limits.max_body_bytes)
    app.add_middleware(APIKeyMiddleware, api_key=config.api_key, public_docs=config.public_docs)
    return app
