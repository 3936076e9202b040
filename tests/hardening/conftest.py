"""Hardening tests: fuzzing, limits, load, faults, auth and secrets (loopback only, bounded).

The in-process fixtures (tiny model, one session engine, apps sharing it, a real uvicorn in a
thread) are those of tests/server/conftest.py, imported rather than copied. `ServerProcess` runs
the real `python -m reference_server` with its stdout/stderr captured to files.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# tests/ holds the `server` and `fakes` test packages; appended so the project's packages win.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from server.conftest import (  # noqa: E402,F401  (fixtures re-exported for this directory)
    LiveServer,
    anyio_backend,
    base_configs,
    client_for,
    engine,
    loaded,
    make_config,
)

from conformance import schemas  # noqa: E402

PLANTED_KEY = "sk-PLANTED-hardening-7777"
MODEL = "tiny"


def assert_openai_error(resp: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A 4xx (or one of `statuses`) whose body is the OpenAI error envelope; returns body["error"]."""
    if statuses:
        assert resp.status_code in statuses, (resp.status_code, resp.text[:500])
    else:
        assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:500])
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert schemas.validate("error", body) == [], body
    return dict(body["error"])


class ServerProcess:
    """`python -m reference_server --port 0 ...` with stdout and stderr captured to files."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None, start_timeout: float = 120) -> None:
        self.out_path = tmp / "server.stdout"
        self.err_path = tmp / "server.stderr"
        self._out = self.out_path.open("wb")
        self._err = self.err_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reference_server", "--port", "0", *args],
            stdout=self._out,
            stderr=self._err,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        )
        deadline = time.monotonic() + start_timeout
        self.base_url = ""
        while not self.base_url:
            text = self.out_path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("serving ") and " on http://" in line:
                    self.base_url = line.split(" on ")[1].split(" ")[0].removesuffix("/v1")
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.err_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("server did not start in time")
            time.sleep(0.1)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def logs(self) -> str:
        self._out.flush()
        self._err.flush()
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def close(self) -> None:
        self.kill()
        self._out.close()
        self._err.close()


async def engine_idle(c: httpx.AsyncClient, timeout: float = 30) -> dict[str, Any]:
    """The engine's /health counters once nothing runs or waits (every slot freed), within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        m = dict((await c.get("/health")).json()["engine"])
        if m["running"] == 0 and m["waiting"] == 0:
            return m
        assert time.monotonic() < deadline, m
        await asyncio.sleep(0.05)


def stream_choices(raw: str) -> tuple[dict[int, str], bool]:
    """A completions SSE body: each choice's concatenated text by index, and whether [DONE] came."""
    import json

    texts: dict[int, str] = {}
    done = False
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block[:200]
        data = block[len("data: "):]
        if data == "[DONE]":
            done = True
            continue
        chunk = json.loads(data)
        assert "error" not in chunk, chunk
        for c in chunk["choices"]:
            texts[c["index"]] = texts.get(c["index"], "") + c["text"]
    return texts, done


def rss_bytes(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


@pytest.fixture(scope="session")
def live_fw(make_config: Any) -> Iterator[LiveServer]:  # noqa: F811 (the imported fixture)
    """A real uvicorn (thread) serving the fireworks profile on the session engine, no key."""
    from reference_server.app import create_app

    server = LiveServer(create_app(make_config("fireworks")))
    yield server
    server.close()
