"""A fake endpoint whose chat template renders tool definitions (tests/fakes/server.py's renders none).

`tools` always reach the prompt (usage.prompt_tokens grows by their token count); `functions` reach
it only where the profile says `params.functions: supported`, so an endpoint that accepts and drops
functions (`ignored`) is visible from outside, as on a real model whose template renders tools::

    with serve_tool_fake(FakeConfig(profile={**openai, "params.functions": "ignored"})) as url:
        ...
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fakes.server import FakeApp, FakeConfig, tokenize


class ToolRenderingFakeApp(FakeApp):
    def _plan(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        plan = super()._plan(body, chat)
        if chat:
            rendered: list[Any] = list(body.get("tools") or [])
            if self.behaviour["params.functions"] == "supported":
                rendered += [{"type": "function", "function": f} for f in body.get("functions") or []]
            if rendered:
                plan["prompt_counts"] = [plan["prompt_counts"][0] + len(tokenize(json.dumps(rendered)))]
        return plan


@contextlib.contextmanager
def serve_tool_fake(config: FakeConfig) -> Iterator[str]:
    """Like fakes.server.serve_fake, for ToolRenderingFakeApp; yields the API base URL."""
    fake = ToolRenderingFakeApp(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app, log_level="critical", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=1, timeout_keep_alive=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"tool-fake-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("tool-rendering fake endpoint did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        fake.stopping.set()
        server.should_exit = True
        thread.join(timeout=5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()
