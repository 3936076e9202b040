"""Against a real uvicorn server: SSE framing on the wire, 32 concurrent streams, disconnects, CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from reference_server.cli import main

from .helpers import parse_sse, stream_text

pytestmark = pytest.mark.anyio


async def test_sse_framing_on_the_wire(live: Any) -> None:
    async with httpx.AsyncClient(base_url=live["fireworks"].base_url, timeout=60) as c:
        body = {"model": "tiny", "prompt": "The wolf", "max_tokens": 8, "temperature": 0, "stream": True}
        async with c.stream("POST", "/v1/completions", json=body) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            raw = b"".join([part async for part in r.aiter_raw()]).decode()
    chunks, done = parse_sse(raw)
    assert done and chunks and raw.endswith("data: [DONE]\n\n")


async def test_32_concurrent_streams_match_solo(live: Any) -> None:
    prompts = [f"Fable {i}: the {['fox', 'crow', 'lion', 'ant'][i % 4]} and the" for i in range(8)]
    body: dict[str, Any] = {"model": "tiny", "max_tokens": 10, "temperature": 0}
    async with httpx.AsyncClient(base_url=live["openai"].base_url, timeout=120) as c:

        async def solo(p: str) -> str:
            r = await c.post("/v1/completions", json={**body, "prompt": p})
            return str(r.json()["choices"][0]["text"])

        async def streamed(p: str) -> str:
            r = await c.post("/v1/completions", json={**body, "prompt": p, "stream": True})
            chunks, done = parse_sse(r.text)
            assert done
            return stream_text(chunks)

        expected = {p: await solo(p) for p in prompts}  # one at a time
        streams = [prompts[i % 8] for i in range(32)]
        got = await asyncio.gather(*(streamed(p) for p in streams))  # 32 at once
    assert got == [expected[p] for p in streams]


async def _health(c: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await c.get("/health")).json()["engine"])


async def test_disconnect_mid_stream_frees_the_slot(live: Any) -> None:
    async with httpx.AsyncClient(base_url=live["fireworks"].base_url, timeout=60) as c:
        before = await _health(c)
        body = {"model": "tiny", "prompt": "The ant", "max_tokens": 200, "stream": True, "ignore_eos": True}
        async with c.stream("POST", "/v1/completions", json=body) as r:
            seen = 0
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    seen += 1
                if seen >= 3:
                    break
        deadline = time.monotonic() + 10
        while True:
            after = await _health(c)
            if after["requests_cancelled"] > before["requests_cancelled"] and after["running"] == 0:
                break
            assert time.monotonic() < deadline, after
            await asyncio.sleep(0.05)
        assert after["generated_tokens"] - before["generated_tokens"] < 200


def test_cli_rejects_unknown_profile(capsys: Any) -> None:
    assert main(["--profile", "no-such-profile"]) == 2
    assert "no-such-profile" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_serves_and_stops_on_sigterm(tmp_path: Any) -> None:
    log = (tmp_path / "stderr.txt").open("w")
    env = {**os.environ, "REFERENCE_SERVER_API_KEY": "cli-secret-key"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reference_server", "--port", "0", "--profile", "openai", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("serving tiny (profile openai) on http://127.0.0.1:"), line
        url = line.split(" on ")[1].split(" ")[0]
        r = httpx.get(url + "/models", headers={"Authorization": "Bearer cli-secret-key"}, timeout=30)
        assert r.status_code == 200
        assert httpx.get(url + "/models", timeout=30).status_code == 401
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        log.close()
        assert "cli-secret-key" not in line + out + (tmp_path / "stderr.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
