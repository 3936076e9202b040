"""Server CPU per streamed token on the HTTP path, with an engine that costs (almost) nothing.

The real app (`reference_server.app.create_app`: tiny tokenizer, a behaviour profile) with a fake
engine that hands out real token ids of the tiny tokenizer in lock-step decode steps (every
`--step-ms`, one token for each live stream, as the batching engine delivers them), streaming
`--requests` requests of `--tokens` tokens, `--concurrency` at a time. Reported: CPU time of the
server per streamed token (detokenization, stops, chunk building, JSON, SSE framing, Starlette,
and in uvicorn mode the HTTP server and socket writes; request handling is included, spread
over the tokens). The fake engine's own cost, a queue put per token, is the same before and
after any change to the serving code.

  --mode uvicorn (default): uvicorn on loopback in a child process, started as `reference-server`
      starts it (`asyncio.run`; `--loop auto` lets uvicorn pick uvloop when installed); the child
      reports its own CPU time, the client (httpx, this process) is not counted.
  --mode asgi: the ASGI app called in this process with no HTTP at all: less noise, app cost only.

The loaded model's objects are frozen out of the cyclic GC (`--no-gc-freeze` to keep them in):
otherwise a full collection walking torch's objects lands in some rounds and not others.

    python -m bench.serving_overhead                        # both endpoints, uvicorn
    python -m bench.serving_overhead --mode asgi --requests 512 --repeat 5

Prints one line per endpoint: the median over --repeat rounds (after a warm-up round) of server
CPU µs per streamed token, and each round's figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

TEXT = (
    "A Fox one day spied a beautiful bunch of ripe grapes hanging from a vine trained along the "
    "branches of a tree. The grapes seemed ready to burst with juice, and the Fox's mouth watered "
    "as he gazed longingly at them. 'Ah, well,' said he, 'they are sour anyway, and not fit for "
    "a gentleman like me.' It is easy to despise what you cannot get."
)


# ------------------------------------------------------------------------------------ server side


class _Stream:
    """What `generate()` returns: an async iterator over a queue the step driver fills."""

    def __init__(self, engine: FakeEngine, count: int) -> None:
        self.engine = engine
        self.count = count
        self.sent = 0
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> Any:
        if self.closed:
            raise StopAsyncIteration
        item = await self.queue.get()
        if item.finish_reason is not None:
            self.closed = True
        return item

    async def aclose(self) -> None:
        self.closed = True
        self.engine.live.discard(self)


class FakeEngine:
    """Engine protocol stand-in: every `step_s` seconds, one token for each live stream."""

    context_length = 256
    model_name = "tiny"
    device = "cpu"
    dtype = "float32"

    def __init__(self, token_ids: list[int], step_s: float) -> None:
        self.token_ids = token_ids
        self.step_s = step_s
        self.live: set[_Stream] = set()
        self._task: asyncio.Task[None] | None = None

    def generate(self, prompt_ids: list[int], params: Any) -> AsyncIterator[Any]:
        stream = _Stream(self, params.max_new_tokens)
        self.live.add(stream)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drive())
        return stream

    async def _drive(self) -> None:
        from reference_server.engine.types import TokenEvent

        ids = self.token_ids
        while True:
            await asyncio.sleep(self.step_s)
            for stream in list(self.live):
                k = stream.sent
                stream.sent += 1
                last = stream.sent >= stream.count
                stream.queue.put_nowait(TokenEvent(ids[k % len(ids)], -0.25, [], "length" if last else None))
                if last:
                    self.live.discard(stream)

    async def prompt_logprobs(self, prompt_ids: list[int], top_logprobs: int) -> list[Any]:
        return []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_app(profile: str, step_s: float, gc_freeze: bool = True) -> Any:
    import gc

    from conformance.profiles import load_profile
    from reference_server.app import create_app
    from reference_server.config import ServerConfig
    from reference_server.model.loader import load_model

    loaded = load_model("tiny", device="cpu", dtype="float32")
    ids = [int(t) for t in loaded.tokenizer.encode(TEXT, add_special_tokens=False)]
    engine = FakeEngine(ids, step_s)
    config = ServerConfig.from_loaded(loaded, engine, load_profile(profile), manage_engine=False)
    app = create_app(config)
    if gc_freeze:  # full collections would walk torch's and transformers' objects: noise, not serving cost
        gc.collect()
        gc.freeze()
    return app


def serve(port: int, profile: str, step_s: float, loop: str, gc_freeze: bool) -> None:
    """The app under uvicorn, started the way `reference-server` starts it (or on uvicorn's own loop choice)."""
    import uvicorn

    app = build_app(profile, step_s, gc_freeze)

    @app.get("/_bench/cpu")
    async def cpu() -> dict[str, Any]:
        try:
            import httptools  # noqa: F401  (uvicorn's http="auto" picks it when importable)

            http = "httptools"
        except ImportError:
            http = "h11"
        running = asyncio.get_running_loop()
        return {"cpu": time.process_time(), "loop": type(running).__module__, "http": http}

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    if loop == "asyncio":  # as reference_server.cli does: asyncio.run, whatever is installed
        asyncio.run(server.serve())
    else:  # uvicorn.run: loop="auto" (uvloop when installed)
        server.run()


# ------------------------------------------------------------------------------------ client side


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(path: str, tokens: int, stream_options: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "tiny", "max_tokens": tokens, "stream": True, "temperature": 0}
    if path.endswith("chat/completions"):
        body["messages"] = [{"role": "user", "content": "Tell me a fable about a fox."}]
    else:
        body["prompt"] = "The lion and the mouse"
    if stream_options:
        body["stream_options"] = {"include_usage": True}
    return body


async def _round(base: str, path: str, args: argparse.Namespace) -> tuple[float, int]:
    import httpx

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        body = _body(path, args.tokens, args.include_usage)
        sem = asyncio.Semaphore(args.concurrency)
        events = 0

        async def one() -> None:
            nonlocal events
            async with sem, client.stream("POST", path, json=body) as resp:
                assert resp.status_code == 200, await resp.aread()
                data = await resp.aread()
                events += data.count(b"\n\n")

        before = (await client.get("/_bench/cpu")).json()["cpu"]
        await asyncio.gather(*(one() for _ in range(args.requests)))
        after = (await client.get("/_bench/cpu")).json()["cpu"]
    return after - before, events


async def _asgi_request(app: Any, path: str, body: bytes) -> bytes:
    """One request straight through the ASGI app (no sockets, no HTTP parsing): the body it sent."""
    finished = asyncio.Event()
    sent_body = False
    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
        elif message["type"] == "http.response.body":
            out.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }
    await app(scope, receive, send)
    return b"".join(out)


async def _asgi_round(app: Any, path: str, args: argparse.Namespace) -> tuple[float, int]:
    body = json.dumps(_body(path, args.tokens, args.include_usage)).encode()
    sem = asyncio.Semaphore(args.concurrency)
    events = 0

    async def one() -> None:
        nonlocal events
        async with sem:
            data = await _asgi_request(app, path, body)
            events += data.count(b"\n\n")

    before = time.process_time()
    await asyncio.gather(*(one() for _ in range(args.requests)))
    return time.process_time() - before, events


async def _measure(base: str | Any, args: argparse.Namespace) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    run = _round if isinstance(base, str) else _asgi_round
    for path in args.paths:
        await run(base, path, args)  # warm-up
        per_token: list[float] = []
        for _ in range(args.repeat):
            cpu, _events = await run(base, path, args)
            per_token.append(cpu / (args.requests * args.tokens) * 1e6)
        results[path] = per_token
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--tokens", type=int, default=64, help="max_tokens per request (tokens streamed)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--profile", default="fireworks")
    p.add_argument("--include-usage", action="store_true", help="send stream_options.include_usage")
    p.add_argument("--step-ms", type=float, default=1.0, help="fake engine: time between decode steps")
    p.add_argument("--paths", nargs="+", default=["/v1/completions", "/v1/chat/completions"])
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument(
        "--mode",
        choices=["uvicorn", "asgi"],
        default="uvicorn",
        help="uvicorn: a server process on loopback, its CPU time; asgi: the app called in-process (no HTTP)",
    )
    p.add_argument(
        "--loop",
        choices=["asyncio", "auto"],
        default="asyncio",
        help="uvicorn mode: asyncio.run as reference-server does (default), or uvicorn's auto choice (uvloop if installed)",
    )
    p.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="leave the loaded model's objects to the cyclic GC (its full collections add noise)",
    )
    p.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.profile, args.step_ms / 1000, args.loop, not args.no_gc_freeze)
        return 0
    if args.mode == "asgi":
        results = asyncio.run(_measure(build_app(args.profile, args.step_ms / 1000, not args.no_gc_freeze), args))
        _print(args, results)
        return 0

    port = _free_port()
    cmd = [sys.executable, "-m", "bench.serving_overhead", "--serve", str(port), "--profile", args.profile,
           "--step-ms", str(args.step_ms), "--loop", args.loop] + (["--no-gc-freeze"] if args.no_gc_freeze else [])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(cmd, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(base + "/_bench/cpu", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the benchmark server did not start") from None
                time.sleep(0.2)
        args.server_info = httpx.get(base + "/_bench/cpu", timeout=5).json()
        results = asyncio.run(_measure(base, args))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    _print(args, results)
    return 0


def _print(args: argparse.Namespace, results: dict[str, list[float]]) -> None:
    if args.json:
        print(json.dumps({path: statistics.median(v) for path, v in results.items()}))
        return
    info = getattr(args, "server_info", None)
    where = f" loop={info['loop']} http={info['http']}" if info else ""
    print(f"mode={args.mode}{where} profile={args.profile} requests={args.requests} concurrency={args.concurrency} "
          f"tokens={args.tokens} include_usage={args.include_usage} step_ms={args.step_ms} "
          f"gc_freeze={not args.no_gc_freeze}")
    for path, values in results.items():
        spread = ", ".join(f"{v:.1f}" for v in values)
        print(f"{path:24s} {statistics.median(values):7.1f} µs server CPU / token  (rounds: {spread})")


if __name__ == "__main__":
    raise SystemExit(main())
