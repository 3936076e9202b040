"""Shared fixtures: the tiny model and one BatchingEngine (session-wide), an app per profile/config.

Apps built here do not manage the engine (`manage_engine=False`): one engine is started for the
session and every app (fireworks, openai, with or without an API key, with small limits) shares it.

The engine runs on the CPU in float32 unless REFERENCE_TEST_DEVICE / REFERENCE_TEST_DTYPE say otherwise:
`REFERENCE_TEST_DEVICE=cuda REFERENCE_TEST_DTYPE=bfloat16 pytest tests/server` runs these tests on a GPU
(CUDA graphs and batched prefill included), as `bench/gpu_session.sh` does.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from conformance.profiles import load_profile
from reference_server.app import create_app
from reference_server.config import ServerConfig

PROFILES = ("fireworks", "openai")


@pytest.fixture(scope="session")
def loaded() -> Any:
    from reference_server.model.loader import load_model

    device = os.environ.get("REFERENCE_TEST_DEVICE", "cpu")
    return load_model("tiny", device=device, dtype=os.environ.get("REFERENCE_TEST_DTYPE", "float32"))


@pytest.fixture(scope="session")
def engine(loaded: Any) -> Iterator[Any]:
    from reference_server.engine.batching import BatchingEngine

    eng = BatchingEngine.from_loaded(loaded, max_batch=32)
    asyncio.run(eng.start())
    yield eng
    asyncio.run(eng.stop())


@pytest.fixture(scope="session")
def base_configs(loaded: Any, engine: Any) -> dict[str, ServerConfig]:
    return {
        name: ServerConfig.from_loaded(loaded, engine, load_profile(name), manage_engine=False) for name in PROFILES
    }


@pytest.fixture(scope="session")
def make_config(base_configs: dict[str, ServerConfig]) -> Any:
    def make(profile: str = "fireworks", **changes: Any) -> ServerConfig:
        limits = changes.pop("limits", None)
        cfg = replace(base_configs[profile], **changes)
        if limits:
            cfg = replace(cfg, limits=replace(cfg.limits, **limits) if isinstance(limits, dict) else limits)
        return cfg

    return make


@pytest.fixture(scope="session")
def apps(base_configs: dict[str, ServerConfig]) -> dict[str, Any]:
    return {name: create_app(cfg) for name, cfg in base_configs.items()}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_for(app: Any, **kw: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60, **kw)


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(apps: dict[str, Any], profile: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(apps[profile]) as c:
        yield c


@pytest.fixture
async def fw(apps: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(apps["fireworks"]) as c:
        yield c


@pytest.fixture
async def oa(apps: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(apps["openai"]) as c:
        yield c


class LiveServer:
    """A real uvicorn server in a thread (its own event loop), sharing the session engine."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live(base_configs: dict[str, ServerConfig]) -> Iterator[dict[str, LiveServer]]:
    servers = {name: LiveServer(create_app(cfg)) for name, cfg in base_configs.items()}
    yield servers
    for s in servers.values():
        s.close()
