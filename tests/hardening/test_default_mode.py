"""Load, faults and limits against the server's default mode: a real `reference-server` process
(`python -m reference_server`, `--engine-process on` by default: the batching engine in a spawned
child), on a free loopback port.

Two servers, started together once for the module:

- `main`: the default mode with a few limit flags (--max-body-bytes, --max-stop-count, --max-n) and
  no key: 200 concurrent streams (each equal to its solo greedy output, ending with [DONE]) with the
  process tree's RSS (server + engine child) back near its warm baseline; 50 clients leaving
  mid-stream; a slow reader whose back-pressure blocks nobody else; the limit flags end to end;
- `small`: --max-batch 1 --max-queue 2, a key and --public-docs: a full queue answers 429 with
  Retry-After at once; the key and --public-docs end to end.

To fill the queue deterministically the engine child is paused (SIGSTOP, then SIGCONT): nothing
leaves the queue while the test fills it, whatever this machine's speed (as the in-process test
does by holding the engine thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import MODEL, PLANTED_KEY, ServerProcess, assert_openai_error, engine_idle
from .slow_reader import check_slow_reader
from .test_load import stream_text, two_hundred_streams

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MAIN_FLAGS = ("--profile", "fireworks", "--log-level", "warning",
              "--max-body-bytes", "8192", "--max-stop-count", "2", "--max-n", "16")
SMALL_FLAGS = ("--profile", "fireworks", "--log-level", "warning", "--max-batch", "1", "--max-queue", "2",
               "--api-key", PLANTED_KEY, "--public-docs")
AUTH = {"Authorization": f"Bearer {PLANTED_KEY}"}
LONG = {"model": MODEL, "prompt": "The ant", "max_tokens": 240, "ignore_eos": True, "stream": True}
SHORT = {"model": MODEL, "prompt": "The crow and the", "max_tokens": 8, "temperature": 0}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """Both servers, started in parallel (each takes ~10 s: the child loads torch and the model)."""
    started: dict[str, ServerProcess] = {}
    errors: list[BaseException] = []

    def start(name: str, flags: tuple[str, ...]) -> None:
        try:
            started[name] = ServerProcess(tmp_path_factory.mktemp(f"default-{name}"), *flags)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=a) for a in (("main", MAIN_FLAGS), ("small", SMALL_FLAGS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if errors:
            raise errors[0]
        yield started
        for name, server in started.items():
            code = server.terminate(timeout=60)
            logs = server.logs()
            assert code == 0, (name, logs[-2000:])
            assert "Traceback" not in logs, (name, logs[-3000:])
            assert PLANTED_KEY not in logs
    finally:
        for server in started.values():
            server.close()


@pytest.fixture(scope="module")
def main(servers: dict[str, ServerProcess]) -> ServerProcess:
    return servers["main"]


@pytest.fixture(scope="module")
def small(servers: dict[str, ServerProcess]) -> ServerProcess:
    return servers["small"]


def engine_child(server: ServerProcess) -> Any:
    """The spawned engine process (psutil.Process) of a server."""
    import psutil

    children = [p for p in psutil.Process(server.proc.pid).children(recursive=True)
                if "spawn_main" in " ".join(p.cmdline())]
    assert len(children) == 1, [p.cmdline() for p in children]
    return children[0]


def tree_rss(server: ServerProcess) -> int:
    """RSS of the server process and all its children (the engine, multiprocessing's helpers)."""
    import psutil

    parent = psutil.Process(server.proc.pid)
    total = 0
    for p in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += int(p.memory_info().rss)
    return total


def test_default_mode_runs_the_engine_in_a_child(main: ServerProcess) -> None:
    child = engine_child(main)
    assert child.is_running()
    # the model's weights live in the child: it is the larger of the two
    assert child.memory_info().rss > 100 << 20
    health = httpx.get(main.base_url + "/health", timeout=10).json()
    assert health["status"] == "ok" and health["engine"]["max_batch"] == 32


@pytest.mark.timeout(180)
async def test_200_concurrent_streams_match_solo_and_tree_memory_returns(main: ServerProcess) -> None:
    # warm-up at full size (the engine's batch shapes); memory is the whole process tree, the child included
    await two_hundred_streams(main.base_url, lambda: tree_rss(main), warm_up=200, settle=0.5)


@pytest.mark.timeout(120)
async def test_50_clients_disconnecting_mid_stream_free_their_slots(main: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=main.base_url, timeout=60) as c:
        expected = (await c.post("/v1/completions", json=SHORT)).json()["choices"][0]["text"]
        before = await engine_idle(c)
        saw_done = 0

        async def client() -> None:
            nonlocal saw_done
            # its own connection, closed as soon as the first token arrives: mid-stream by construction
            async with httpx.AsyncClient(base_url=main.base_url, timeout=60) as own, own.stream(
                    "POST", "/v1/completions", json=LONG) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        saw_done += line == "data: [DONE]"
                        break

        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(50))), 60)
        assert saw_done == 0
        after = await engine_idle(c)  # running and waiting back to 0: every slot freed
        cancelled = after["requests_cancelled"] - before["requests_cancelled"]
        completed = after["requests_completed"] - before["requests_completed"]
        assert cancelled + completed == 50, after
        assert cancelled >= 45, after  # generation stopped when the clients left...
        assert after["generated_tokens"] - before["generated_tokens"] < 50 * 240 // 2, after  # ...early
        assert after["requests_failed"] == before["requests_failed"]
        # and the server is healthy: the next request is served, correctly
        r = await c.post("/v1/completions", json=SHORT)
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == expected


@pytest.mark.timeout(120)
def test_slow_reader_does_not_block_other_streams(main: ServerProcess) -> None:
    check_slow_reader(main.base_url)


@pytest.mark.timeout(60)
def test_limit_flags_end_to_end(main: ServerProcess) -> None:
    cmpl = {**SHORT, "max_tokens": 2}
    with httpx.Client(base_url=main.base_url, timeout=30) as c:
        r = c.post("/v1/completions", json={**cmpl, "prompt": "a " * 5000})  # --max-body-bytes 8192
        err = assert_openai_error(r, 413)
        assert err["code"] == "request_too_large" and "8192" in err["message"]
        for path, body in (("/v1/completions", cmpl),
                           ("/v1/chat/completions", {"model": MODEL, "max_tokens": 2,
                                                     "messages": [{"role": "user", "content": "Hi"}]})):
            err = assert_openai_error(c.post(path, json={**body, "stop": ["a", "b", "c"]}), 400)  # --max-stop-count 2
            assert err["param"] == "stop", err
            err = assert_openai_error(c.post(path, json={**body, "n": 17}), 400)  # --max-n 16
            assert err["param"] == "n", err
            r = c.post(path, json={**body, "n": 16, "stop": ["a", "b"]})  # at the limits: served
            assert r.status_code == 200, r.text


@pytest.mark.timeout(120)
async def test_full_queue_answers_429_with_retry_after(small: ServerProcess) -> None:
    child = engine_child(small)
    long_body = {**LONG, "max_tokens": 20, "temperature": 0, "ignore_eos": True}
    async with httpx.AsyncClient(base_url=small.base_url, timeout=60, headers=AUTH) as c:
        expected = (await c.post("/v1/completions", json={**long_body, "stream": False})).json()
        expected_text = expected["choices"][0]["text"]
        await engine_idle(c)

        async def request(path: str, body: dict[str, Any]) -> httpx.Response:
            r = await c.post(path, json=body)
            await r.aread()
            return r

        child.send_signal(signal.SIGSTOP)  # nothing leaves the queue until SIGCONT
        try:
            # 5 at once into a 2-deep queue: exactly 2 are accepted (and wait), 3 answered 429 at once
            tasks = [asyncio.ensure_future(request("/v1/completions", long_body)) for _ in range(5)]
            deadline = time.monotonic() + 30
            while sum(t.done() for t in tasks) < 3:
                assert time.monotonic() < deadline, "full queue: the 429s did not come"
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            refused = [t.result() for t in tasks if t.done()]
            waiting = [t for t in tasks if not t.done()]
            assert len(refused) == 3 and len(waiting) == 2, [r.status_code for r in refused]
            for r in refused:
                err = assert_openai_error(r, 429, 503)
                assert int(r.headers["retry-after"]) >= 1
                assert err["code"] in ("rate_limit_exceeded", "service_unavailable")
            # the queue holds the 2 accepted ones: any further request, either endpoint, is refused at once
            for path, body in (("/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 2}),
                               ("/v1/chat/completions", {"model": MODEL, "max_tokens": 2, "stream": True,
                                                         "messages": [{"role": "user", "content": "x"}]})):
                started = time.monotonic()
                r = await request(path, body)
                assert time.monotonic() - started < 10  # answered, not queued behind the others
                err = assert_openai_error(r, 429, 503)
                assert int(r.headers["retry-after"]) >= 1
                assert err["code"] in ("rate_limit_exceeded", "service_unavailable")
        finally:
            child.send_signal(signal.SIGCONT)
        # once the engine runs again, the 2 queued requests are served, correctly
        for r in await asyncio.wait_for(asyncio.gather(*waiting), 60):
            assert r.status_code == 200, r.text
            text, done = stream_text(r.text)
            assert done and text == expected_text
        await engine_idle(c)
        r = await c.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 2})
        assert r.status_code == 200, r.text


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc", "/health"])
def test_key_and_public_docs_end_to_end(small: ServerProcess, path: str) -> None:
    """--api-key with --public-docs: the API description and /health open, the API itself keyed."""
    with httpx.Client(base_url=small.base_url, timeout=30) as c:
        assert c.get(path).status_code == 200
        err = assert_openai_error(c.get("/v1/models"), 401)
        assert err["code"] == "invalid_api_key"
        assert c.get("/v1/models", headers=AUTH).status_code == 200
        assert PLANTED_KEY not in c.get(path).text

