"""Streaming load generator: N concurrent clients send fixed /v1/completions requests over aiohttp.

The client shares the machine with the server it measures (2 cores in CI), so its own cost is kept
small: aiohttp's streaming reader and a bytes-level SSE split take about a third of the CPU per
token that httpx's async streaming did (0.15 s against 0.42 s for 4,096 tokens at 32 streams,
measured against the reference server on 2 cores), CPU the server under test gets back. Every
system in a run is measured with this same client, and each level records the client's CPU time.

Each request streams (SSE). Times are taken on arrival of each chunk that carries text:
time to first token (TTFT) is first text chunk - request sent; inter-token latency (ITL) is the gap
between consecutive text chunks. Completion tokens come from the final chunk's `usage` when the
server reports it (both the reference server's fireworks profile and `transformers serve` do),
else from the number of text chunks.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx

from bench.stats import safe_ratio, summarize

# Fixed prompts (plain English, a few dozen tokens with the tiny model's tokenizer).
PROMPTS: tuple[str, ...] = (
    "The fox and the crow met by the river, and the fox said",
    "Once upon a time a lion lay asleep in the forest when a mouse",
    "A hungry wolf saw a lamb drinking at a stream and wished to",
    "The tortoise and the hare argued about which of them was faster, so",
    "An ant spent the summer gathering grain while the grasshopper",
    "The north wind and the sun disputed which was the stronger, and agreed",
    "A dog carrying a piece of meat in his mouth crossed a bridge and",
    "The town mouse invited his cousin the country mouse to dinner, and",
)


@dataclass
class RequestResult:
    ok: bool
    started: float  # perf_counter when the request was sent
    ended: float
    ttft: float | None = None
    itls: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    text_chunks: int = 0
    finish_reason: str | None = None
    error: str | None = None


@dataclass
class LoadResult:
    label: str
    concurrency: int
    requests: int
    max_tokens: int
    wall_s: float
    results: list[RequestResult]
    peak_rss_bytes: int | None = None
    gpu_peak_bytes: int | None = None
    client_cpu_s: float | None = None  # CPU time of the load generator (this process) over the level

    @property
    def ok(self) -> list[RequestResult]:
        return [r for r in self.results if r.ok]

    @property
    def errors(self) -> list[str]:
        return [r.error or "error" for r in self.results if not r.ok]

    @property
    def completion_tokens(self) -> int:
        return sum(r.completion_tokens for r in self.ok)

    @property
    def tokens_per_s(self) -> float | None:
        return safe_ratio(float(self.completion_tokens), self.wall_s) if self.ok else None

    @property
    def requests_per_s(self) -> float | None:
        return safe_ratio(float(len(self.ok)), self.wall_s) if self.ok else None

    def summary(self) -> dict[str, Any]:
        ok = self.ok
        ttft = [r.ttft for r in ok if r.ttft is not None]
        itl = [x for r in ok for x in r.itls]
        per_req = [r.completion_tokens for r in ok]
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "ok": len(ok),
            "errors": len(self.results) - len(ok),
            "first_error": self.errors[0] if self.errors else None,
            "max_tokens": self.max_tokens,
            "completion_tokens": self.completion_tokens,
            "mean_tokens_per_request": (sum(per_req) / len(per_req)) if per_req else None,
            "wall_s": self.wall_s,
            "tokens_per_s": self.tokens_per_s,
            "requests_per_s": self.requests_per_s,
            "ttft_s": summarize(ttft),
            "itl_s": summarize(itl),
            "peak_rss_bytes": self.peak_rss_bytes,
            "gpu_peak_bytes": self.gpu_peak_bytes,
            "client_cpu_s": self.client_cpu_s,
        }


def _text_of(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    c = choices[0]
    if "text" in c and isinstance(c["text"], str):
        return c["text"]
    delta = c.get("delta") or {}
    content = delta.get("content")
    return content if isinstance(content, str) else ""


class SSEEvents:
    """Incremental SSE split for one response: feed raw bytes, get the `data:` payload of each
    complete event (events end with a blank line; CRLF line ends are accepted too)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        *events, self._buf = buf.split(b"\n\n")
        payloads = []
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    payloads.append(line[5:].strip())
        return payloads


def _record(res: RequestResult, data: bytes, now: float) -> None:
    """Fold one `data:` payload into the request's result (times, tokens, finish reason, errors)."""
    if data == b"[DONE]":
        return
    try:
        chunk = json.loads(data)
    except ValueError:
        res.error = f"bad SSE data: {data[:120]!r}"
        return
    if not isinstance(chunk, dict):
        return
    if "error" in chunk and "choices" not in chunk:
        res.error = f"stream error: {json.dumps(chunk)[:300]}"
        return
    usage = chunk.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        res.completion_tokens = usage["completion_tokens"]
    for c in chunk.get("choices") or []:
        if c.get("finish_reason"):
            res.finish_reason = c["finish_reason"]
    if _text_of(chunk):
        res.text_chunks += 1
        if res.ttft is None:
            res.ttft = now - res.started
        else:
            res.itls.append(now - res.ended)
        res.ended = now  # the last text chunk's arrival, until the stream ends


async def one_request(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> RequestResult:
    t0 = time.perf_counter()
    res = RequestResult(ok=False, started=t0, ended=t0)
    try:
        async with session.post(url, json=body, headers=headers) as resp:
            if resp.status != 200:
                raw = await resp.read()
                res.error = f"HTTP {resp.status}: {raw[:300].decode('utf-8', 'replace')}"
                res.ended = time.perf_counter()
                return res
            events = SSEEvents()
            async for piece in resp.content.iter_any():
                now = time.perf_counter()
                for data in events.feed(piece):
                    _record(res, data, now)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        res.ended = time.perf_counter()
        return res
    res.ended = time.perf_counter()
    if not res.completion_tokens:  # no usage reported: count the text chunks
        res.completion_tokens = res.text_chunks
    res.ok = res.error is None and res.ttft is not None
    if res.ttft is None and res.error is None:
        res.error = "no text chunk in the stream"
    return res


def completion_body(
    model: str, prompt: str, max_tokens: int, *, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    if extra:
        body.update(extra)
    return body


async def run_load(
    base_url: str,
    model: str,
    *,
    concurrency: int,
    requests: int,
    max_tokens: int,
    extra_body: dict[str, Any] | None = None,
    label: str = "",
    timeout: float = 600.0,
    prompts: tuple[str, ...] = PROMPTS,
    budget_s: float | None = None,
) -> LoadResult:
    """`requests` streaming completions, at most `concurrency` in flight (closed loop).

    With `budget_s`, no request is started after that many seconds (those in flight finish), so a
    slow system (a peer that serves one request at a time) cannot stall the run; the figures are
    then over the requests that ran (`requests` in the summary says how many).
    """
    url = base_url.rstrip("/") + "/completions"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    results: list[RequestResult] = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout, trust_env=False) as client:

        async def worker() -> None:
            while True:
                if budget_s is not None and time.perf_counter() - t0 > budget_s:
                    return
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                body = completion_body(model, prompts[i % len(prompts)], max_tokens, extra=extra_body)
                results.append(await one_request(client, url, body))

        await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
        wall = time.perf_counter() - t0
    return LoadResult(label, concurrency, len(results), max_tokens, wall, results,
                      client_cpu_s=time.process_time() - cpu0)


async def first_model(base_url: str) -> str:
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        resp = await client.get(base_url.rstrip("/") + "/models")
        resp.raise_for_status()
        data = resp.json().get("data") or []
        if not data:
            raise RuntimeError(f"{base_url}/models lists no model")
        return str(data[0]["id"])
