"""The suite under faults not covered by tests/suite_e2e: a gigantic single SSE event, a gigantic
non-streamed body (both cut at the client's 16 MiB cap, memory bounded) and a server that sends
its headers and then nothing (bounded by --timeout). Raw loopback servers, no model."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.client import MAX_BODY_BYTES, Client, TransportFailure
from conformance.results import Cost, Status

from .conftest import PLANTED_KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

GIANT = 48 << 20  # 3x the client's cap


def _serve(conn: socket.socket, mode: str, stop: threading.Event) -> None:
    with contextlib.suppress(OSError):
        conn.settimeout(30)
        request = conn.recv(65536)  # the request (small)
        if request.startswith(b"GET"):  # /v1/models answers properly: the endpoint is reachable
            body = b'{"object":"list","data":[{"id":"m","object":"model","created":0,"owned_by":"x"}]}'
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
            return
        kind = "text/event-stream" if mode != "giant-json" else "application/json"
        conn.sendall(f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\nconnection: close\r\n\r\n".encode())
        if mode == "headers-only":
            stop.wait(60)
            return
        conn.sendall(b"data: " if mode == "giant-event" else b'{"text": "')
        block = b"x" * (1 << 20)
        for _ in range(GIANT >> 20):
            if stop.is_set():
                return
            conn.sendall(block)  # one event, never terminated: no newline at all


def _serve_and_close(conn: socket.socket, mode: str, stop: threading.Event) -> None:
    try:
        _serve(conn, mode, stop)
    finally:
        conn.close()


@contextlib.contextmanager
def raw_server(mode: str) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            threading.Thread(target=_serve_and_close, args=(conn, mode, stop), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        stop.set()
        t.join(timeout=5)
        sock.close()


@pytest.mark.parametrize("mode", ["giant-event", "giant-json"])
def test_gigantic_bodies_are_cut_at_the_cap_with_bounded_memory(mode: str) -> None:
    with raw_server(mode) as url, Client(url, PLANTED_KEY, 20, Cost()) as client:
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(TransportFailure) as info:
                if mode == "giant-event":
                    client.stream_completions(model="m", prompt="x", max_tokens=2)
                else:
                    client.completions(model="m", prompt="x", max_tokens=2, cache=False)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert info.value.status == Status.ERROR
    assert str(MAX_BODY_BYTES) in str(info.value) or "exceed" in str(info.value), info.value
    assert time.monotonic() - started < 60
    assert peak < 8 * MAX_BODY_BYTES, f"peak {peak >> 20} MiB for a {MAX_BODY_BYTES >> 20} MiB cap"
    assert PLANTED_KEY not in str(info.value)


def test_headers_then_nothing_times_out() -> None:
    with raw_server("headers-only") as url, Client(url, PLANTED_KEY, 2, Cost()) as client:
        started = time.monotonic()
        with pytest.raises(TransportFailure) as info:
            client.stream_completions(model="m", prompt="x", max_tokens=2)
    assert info.value.status == Status.TIMEOUT
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("mode", ["giant-event", "headers-only"])
def test_cli_exits_1_without_traceback(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    with raw_server(mode) as url:
        started = time.monotonic()
        code = main(["run", "--base-url", url, "--api-key", PLANTED_KEY, "--model", "m", "--profile", "openai",
                     "--only", "stream.done", "--timeout", "3", "--max-examples", "1",
                     "--context-length", "512", "--report-dir", str(tmp_path)])
        out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert time.monotonic() - started < 90
    for text in [out, err, *(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())]:
        assert PLANTED_KEY not in text
