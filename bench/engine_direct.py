"""Baseline between raw generate and the server: the BatchingEngine driven in-process, no HTTP.

server_cN / engine_cN is the cost of the HTTP/SSE layer (and of the client sharing the machine);
engine_c1 / raw_b1 the cost of the engine itself at one stream.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.stats import safe_ratio, summarize


async def _run(loaded: Any, prompts: list[list[int]], concurrency: int, max_tokens: int,
               max_batch: int) -> dict[str, Any]:
    from reference_server.engine.batching import BatchingEngine
    from reference_server.engine.types import SamplingParams

    engine = BatchingEngine.from_loaded(loaded, max_batch=max_batch)
    await engine.start()
    params = SamplingParams(max_new_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    ttfts: list[float] = []
    itls: list[float] = []

    async def one(ids: list[int], record: bool) -> int:
        t0 = time.perf_counter()
        last = None
        n = 0
        async for _ in engine.generate(ids, params):
            now = time.perf_counter()
            if record:
                if last is None:
                    ttfts.append(now - t0)
                else:
                    itls.append(now - last)
            last = now
            n += 1
        return n

    try:
        await asyncio.gather(*(one(p, False) for p in prompts[:2]))  # warm up
        sem = asyncio.Semaphore(concurrency)

        async def limited(ids: list[int]) -> int:
            async with sem:
                return await one(ids, True)

        t0 = time.perf_counter()
        counts = await asyncio.gather(*(limited(p) for p in prompts))
        wall = time.perf_counter() - t0
        metrics = engine.metrics().as_dict()
    finally:
        await engine.stop()
    tokens = sum(counts)
    return {
        "concurrency": concurrency,
        "requests": len(prompts),
        "completion_tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": safe_ratio(float(tokens), wall),
        "requests_per_s": safe_ratio(float(len(prompts)), wall),
        "ttft_s": summarize(ttfts),
        "itl_s": summarize(itls),
        "engine": metrics,
    }


def engine_direct(loaded: Any, prompt_texts: list[str], *, concurrency: int, max_tokens: int,
                  max_batch: int) -> dict[str, Any]:
    tok = loaded.tokenizer
    prompts = [list(tok(p)["input_ids"]) for p in prompt_texts]
    return asyncio.run(_run(loaded, prompts, concurrency, max_tokens, max_batch))
