"""Baseline between raw generate and the server: the BatchingEngine driven in-process, no HTTP.

server_cN / engine_cN is the cost of the HTTP/SSE layer (and of the client sharing the machine);
engine_c1 / raw_b1 the cost of the engine itself at one stream.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench.stats import safe_ratio, summarize


@dataclass
class EngineResult:
    concurrency: int
    requests: int
    completion_tokens: int
    wall_s: float
    ttfts: list[float] = field(default_factory=list)
    itls: list[float] = field(default_factory=list)
    metrics: dict[str, Any] | None = None

    @property
    def tokens_per_s(self) -> float | None:
        return safe_ratio(float(self.completion_tokens), self.wall_s)

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "completion_tokens": self.completion_tokens,
            "wall_s": self.wall_s,
            "tokens_per_s": self.tokens_per_s,
            "requests_per_s": safe_ratio(float(self.requests), self.wall_s),
            "ttft_s": summarize(self.ttfts),
            "itl_s": summarize(self.itls),
            "engine": self.metrics,
        }

    @classmethod
    def pooled(cls, results: list[EngineResult]) -> EngineResult:
        """All requests of several runs as one sample (times add up; the last run's engine metrics)."""
        if not results:
            raise ValueError("no engine results to pool")
        return cls(results[0].concurrency, sum(r.requests for r in results),
                   sum(r.completion_tokens for r in results), sum(r.wall_s for r in results),
                   [x for r in results for x in r.ttfts], [x for r in results for x in r.itls], results[-1].metrics)


async def _run(loaded: Any, prompts: list[list[int]], concurrency: int, max_tokens: int,
               max_batch: int, engine_kw: dict[str, Any]) -> EngineResult:
    from reference_server.engine.batching import BatchingEngine
    from reference_server.engine.types import SamplingParams

    engine = BatchingEngine.from_loaded(loaded, max_batch=max_batch, **engine_kw)
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
    return EngineResult(concurrency, len(prompts), sum(counts), wall, ttfts, itls, metrics)


def engine_run(loaded: Any, prompt_texts: list[str], *, concurrency: int, max_tokens: int,
               max_batch: int, **engine_kw: Any) -> EngineResult:
    """A fresh engine on `loaded` (started, warmed up with two requests, stopped after), one closed-loop
    run; `engine_kw`: further BatchingEngine options (e.g. cuda_graphs=False)."""
    tok = loaded.tokenizer
    prompts = [list(tok(p)["input_ids"]) for p in prompt_texts]
    return asyncio.run(_run(loaded, prompts, concurrency, max_tokens, max_batch, engine_kw))


def engine_direct(loaded: Any, prompt_texts: list[str], *, concurrency: int, max_tokens: int,
                  max_batch: int) -> dict[str, Any]:
    return engine_run(loaded, prompt_texts, concurrency=concurrency, max_tokens=max_tokens,
                      max_batch=max_batch).summary()
