"""Load: 200 concurrent streams are all correct; memory and engine counters return to baseline;
a full queue answers 429 with Retry-After at once instead of making clients wait."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reference_server.app import create_app

from .conftest import MODEL, LiveServer, assert_openai_error, engine_idle, rss_bytes, stream_choices

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROMPTS = [f"The {animal} and the {other}" for animal in ("fox", "crow", "lion", "ant", "wolf")
           for other in ("grapes", "mouse")]
BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 8, "temperature": 0}


def stream_text(raw: str) -> tuple[str, bool]:
    """A one-choice completions SSE body: its text, and whether [DONE] came."""
    texts, done = stream_choices(raw)
    return "".join(texts[i] for i in sorted(texts)), done


async def two_hundred_streams(base_url: str, rss: Callable[[], int], warm_up: int, settle: float = 0.0) -> None:
    """Solo greedy outputs of PROMPTS, a warm-up wave of `warm_up` streams, then 200 concurrent streams: each
    equals its solo output and ends with [DONE], none fails, and `rss()` returns within 64 MiB of its warm
    baseline (`settle`: seconds to let the server close what the streams left before measuring)."""
    # keep-alive shorter than the server's (uvicorn: 5 s), so no request goes out on a connection it is closing
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as c:
        expected = {}
        for p in PROMPTS:  # solo, one at a time
            r = await c.post("/v1/completions", json={**BODY, "prompt": p})
            assert r.status_code == 200, r.text
            expected[p] = r.json()["choices"][0]["text"]

        async def one(p: str) -> str:
            r = await c.post("/v1/completions", json={**BODY, "prompt": p, "stream": True})
            assert r.status_code == 200, r.text
            assert r.text.endswith("data: [DONE]\n\n"), r.text[-200:]
            text, done = stream_text(r.text)
            assert done
            return text

        async def wave(count: int) -> tuple[list[str], list[str]]:
            prompts = [PROMPTS[i % len(PROMPTS)] for i in range(count)]
            return prompts, list(await asyncio.gather(*(one(p) for p in prompts)))

        prompts, got = await wave(warm_up)  # warm-up: allocator, caches, connection pool, batch shapes
        assert got == [expected[p] for p in prompts]
        before = await engine_idle(c)
        gc.collect()
        rss0 = rss()
        started = time.monotonic()
        prompts, got = await wave(200)
        elapsed = time.monotonic() - started
        assert got == [expected[p] for p in prompts]
        after = await engine_idle(c)
        gc.collect()
        await asyncio.sleep(settle)
        rss1 = rss()
    assert after["requests_completed"] - before["requests_completed"] == 200
    assert after["requests_failed"] == before["requests_failed"]
    # Memory returns to the warm baseline (tolerance for allocator noise: 64 MiB).
    assert rss1 - rss0 < 64 << 20, f"RSS grew by {(rss1 - rss0) >> 20} MiB over 200 streams"
    assert elapsed < 120


@pytest.mark.timeout(180)
async def test_200_concurrent_streams_match_solo_and_memory_returns(live_fw: LiveServer) -> None:
    await two_hundred_streams(live_fw.base_url, lambda: rss_bytes(os.getpid()), warm_up=40)


@pytest.mark.timeout(120)
async def test_full_queue_answers_429_with_retry_after(loaded: Any, make_config: Any) -> None:
    from reference_server.engine.batching import BatchingEngine

    engine = BatchingEngine.from_loaded(loaded, max_batch=1, max_queue=2)
    await engine.start()
    server = LiveServer(create_app(make_config("fireworks", engine=engine)))
    long_body = {"model": MODEL, "prompt": "The ant", "max_tokens": 200, "ignore_eos": True, "stream": True}
    # Hold the worker thread inside a job so that nothing leaves the queue while we fill it: the
    # queue's state is then fixed by the test, not by how fast this machine decodes.
    gate = threading.Event()
    blocker = asyncio.ensure_future(engine._submit(lambda: gate.wait(60)))
    statuses: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as c:

            async def hold() -> None:
                async with c.stream("POST", "/v1/completions", json=long_body) as r:
                    statuses.append(r.status_code)
                    async for _ in r.aiter_bytes():
                        pass

            holders = [asyncio.ensure_future(hold()) for _ in range(2)]  # fill the 2-deep queue
            deadline = time.monotonic() + 30
            while engine.metrics().waiting < 2:
                assert time.monotonic() < deadline, engine.metrics()
                await asyncio.sleep(0.02)
            for path, body in (("/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 2}),
                               ("/v1/chat/completions", {"model": MODEL, "max_tokens": 2, "stream": True,
                                                         "messages": [{"role": "user", "content": "x"}]})):
                started = time.monotonic()
                r = await c.post(path, json=body)
                assert time.monotonic() - started < 10  # answered, not queued behind the others
                err = assert_openai_error(r, 429, 503)
                assert int(r.headers["retry-after"]) >= 1
                assert err["code"] in ("rate_limit_exceeded", "service_unavailable")
            gate.set()
            await blocker
            deadline = time.monotonic() + 30
            while len(statuses) < 2:  # both queued requests are served once the queue moves
                assert time.monotonic() < deadline, engine.metrics()
                await asyncio.sleep(0.02)
            assert statuses == [200, 200]
            for h in holders:
                h.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
            deadline = time.monotonic() + 30
            while engine.metrics().running or engine.metrics().waiting:  # the cancelled streams free it
                assert time.monotonic() < deadline, engine.metrics()
                await asyncio.sleep(0.05)
            r = await c.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 2})
            assert r.status_code == 200, r.text
    finally:
        gate.set()
        server.close()
        await engine.stop()
