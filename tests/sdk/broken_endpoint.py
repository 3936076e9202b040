"""A broken OpenAI-compatible endpoint for the sdk.* tests: the good fake behind an ASGI middleware that
rewrites its responses (drop a field the SDK needs, replace an error body...)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from fakes.server import PLANTED_KEY, FakeConfig, create_app

Json = Any
Headers = list[tuple[bytes, bytes]]
# (status, headers, body) -> (status, headers, body)
Rewrite = Callable[[int, Headers, bytes], tuple[int, Headers, bytes]]


class RewriteMiddleware:
    """Buffers each HTTP response of the wrapped app and passes it through `rewrite` (streams included)."""

    def __init__(self, app: Any, rewrite: Rewrite) -> None:
        self.app = app
        self.rewrite = rewrite

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, headers, body = self.rewrite(start["status"], list(start.get("headers", [])), b"".join(parts))
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


def rewrite_json(mutate: Callable[[Json], None]) -> Rewrite:
    """Apply `mutate` to every JSON object the endpoint sends: whole bodies and each SSE `data:` chunk."""

    def rewrite(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        ctype = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"")
        if b"text/event-stream" in ctype:
            lines = []
            for line in body.decode().split("\n"):
                if line.startswith("data: {"):
                    data = json.loads(line[6:])
                    mutate(data)
                    line = "data: " + json.dumps(data)
                lines.append(line)
            return status, headers, "\n".join(lines).encode()
        if b"json" in ctype and body:
            data = json.loads(body)
            mutate(data)
            return status, headers, json.dumps(data).encode()
        return status, headers, body

    return rewrite


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port in a background thread; yields the API base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=1, timeout_keep_alive=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("broken endpoint did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@contextlib.contextmanager
def broken_fake(rewrite: Rewrite, config: FakeConfig | None = None) -> Iterator[str]:
    """The good fake (fireworks, planted key) behind a response-rewriting middleware."""
    app = create_app(config or FakeConfig(profile="fireworks", api_key=PLANTED_KEY))
    with serve_app(RewriteMiddleware(app, rewrite)) as url:
        yield url
