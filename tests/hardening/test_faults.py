"""Faults: mass disconnects free their slots, a slow reader blocks nobody, SIGTERM drains in-flight work."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import MODEL, LiveServer, ServerProcess, engine_idle
from .slow_reader import check_slow_reader

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LONG = {"model": MODEL, "prompt": "The ant", "max_tokens": 200, "ignore_eos": True, "stream": True}
SHORT = {"model": MODEL, "prompt": "The crow and the", "max_tokens": 8, "temperature": 0}


@pytest.mark.timeout(120)
async def test_50_clients_disconnecting_mid_stream_free_their_slots(live_fw: LiveServer) -> None:
    limits = httpx.Limits(max_connections=80)
    async with httpx.AsyncClient(base_url=live_fw.base_url, timeout=60, limits=limits) as c:
        expected = (await c.post("/v1/completions", json=SHORT)).json()["choices"][0]["text"]
        before = await engine_idle(c)
        release = asyncio.Event()
        started = 0

        async def client() -> None:
            nonlocal started
            # its own connection; leaving the block closes it mid-stream
            async with httpx.AsyncClient(base_url=live_fw.base_url, timeout=60) as own, own.stream(
                    "POST", "/v1/completions", json=LONG) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        started += 1
                        break
                await release.wait()

        tasks = [asyncio.ensure_future(client()) for _ in range(50)]
        deadline = time.monotonic() + 60
        while started < 50:
            assert time.monotonic() < deadline, f"only {started} streams started"
            assert not any(t.done() and t.exception() for t in tasks), [t.exception() for t in tasks if t.done()]
            await asyncio.sleep(0.05)
        release.set()  # all 50 disconnect at once
        await asyncio.gather(*tasks)
        after = await engine_idle(c)  # running and waiting back to 0: every slot freed
        assert after["requests_cancelled"] - before["requests_cancelled"] >= 50
        # far fewer tokens than 50 x 200: generation stopped when the clients left
        assert after["generated_tokens"] - before["generated_tokens"] < 50 * 200
        # and the server is healthy: the next request is served, correctly
        r = await c.post("/v1/completions", json=SHORT)
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == expected


@pytest.mark.timeout(120)
def test_slow_reader_does_not_block_other_streams(live_fw: LiveServer) -> None:
    """A ~2 MB stream read through a 4 KiB receive window (small MSS too) while other streams run:
    the server's writes to it block (shown, see slow_reader.py), the others finish promptly, and the
    slow stream completes, equal to the same request non-streamed."""
    check_slow_reader(live_fw.base_url)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("engine_process", ["off", "on"])
def test_sigterm_drains_in_flight_requests_and_exits_0(tmp_path: Path, engine_process: str) -> None:
    server = ServerProcess(
        tmp_path, "--profile", "fireworks", "--log-level", "warning", "--engine-process", engine_process
    )
    try:
        url = server.base_url
        drain_body = {**SHORT, "max_tokens": 150, "ignore_eos": True}
        with httpx.Client(base_url=url, timeout=60) as c:
            expected = c.post("/v1/completions", json=drain_body).json()["choices"][0]["text"]
        result: dict[str, Any] = {}

        def in_flight() -> None:
            with httpx.Client(base_url=url, timeout=60) as c, c.stream(
                    "POST", "/v1/completions", json={**drain_body, "stream": True}) as r:
                result["status"] = r.status_code
                result["raw"] = ""
                for text in r.iter_text():
                    result["raw"] += text
                    result.setdefault("first", time.monotonic())

        t = threading.Thread(target=in_flight, daemon=True)
        t.start()
        deadline = time.monotonic() + 30
        while "first" not in result:
            assert time.monotonic() < deadline and t.is_alive(), result
            time.sleep(0.01)
        assert "[DONE]" not in result["raw"]  # really in flight when the signal arrives
        code = server.terminate(timeout=60)
        t.join(timeout=30)
        assert code == 0, server.logs()[-2000:]
        assert result["status"] == 200
        raw = result["raw"]
        assert raw.endswith("data: [DONE]\n\n"), raw[-300:]
        from .test_load import stream_text

        text, done = stream_text(raw)
        assert done and text == expected
        logs = server.logs()
        assert "Traceback" not in logs, logs[-3000:]
        # after the drain, nothing listens any more
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=5)
    finally:
        server.close()
