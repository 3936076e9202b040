"""A slow stream reader with a tiny receive window, and the check that it blocks nobody but itself.

`SlowReader` is a raw HTTP/1.1 client whose socket gets, before it connects, a small SO_RCVBUF
(the window it advertises) and a small MSS (TCP_MAXSEG; on loopback the MSS is ~64 KiB otherwise,
and the server's send buffer is sized from it: ~3 MiB, which a test stream would fit in). With both,
the server's kernel can hold only ~100 KiB of the stream, so a stream of megabytes really makes the
server's writes block: the rest waits in the server process until the client reads.

`check_slow_reader(base_url)` runs one such stream (16 choices x 240 tokens with logprobs and echo:
~2 MB of SSE), shows that back-pressure happened (the engine has finished the slow request, the
client has read next to nothing, and the bytes in both kernels' queues (/proc/net/tcp) are a small
part of the stream: the rest is held in the server, its writes blocked), that other streams complete
promptly meanwhile, and that the slow stream then completes, equal to the same request non-streamed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import socket
import struct
import termios
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from .conftest import MODEL, stream_choices

SLOW_BODY: dict[str, Any] = {
    "model": MODEL, "prompt": "The ant", "max_tokens": 240, "ignore_eos": True, "temperature": 0,
    "n": 16, "logprobs": 5, "echo": True, "stream": True,
}
FAST_BODY: dict[str, Any] = {"model": MODEL, "prompt": "The crow and the", "max_tokens": 16, "temperature": 0,
                             "stream": True}
RCVBUF = 4096
MSS = 1000


class SlowReader:
    """POST `body` to `path` over a socket with a tiny receive buffer; read it as slowly as asked."""

    def __init__(self, base_url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        url = urlsplit(base_url)
        self.server_port = int(url.port or 80)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        with contextlib.suppress(OSError):  # best effort: without it the server's kernel buffers more
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, MSS)
        self.sock.settimeout(120)
        self.sock.connect((url.hostname or "127.0.0.1", self.server_port))
        self.client_port = self.sock.getsockname()[1]
        payload = json.dumps(body).encode()
        head = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}", "Content-Type: application/json",
                f"Content-Length: {len(payload)}", "Connection: close",
                *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        self.data = bytearray()
        self.eof = False

    def pending(self) -> int:
        """Bytes waiting in this socket's receive queue (FIONREAD)."""
        buf = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
        return int(struct.unpack("i", buf)[0])

    def read(self, n: int) -> int:
        chunk = self.sock.recv(n)
        if not chunk:
            self.eof = True
        self.data += chunk
        return len(chunk)

    def read_all(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.eof:
            assert time.monotonic() < deadline, f"slow stream not complete: {len(self.data)} bytes"
            self.read(1 << 16)

    def close(self) -> None:
        self.sock.close()

    def response(self) -> tuple[int, str]:
        """(status, body) of the whole response, the chunked transfer coding undone."""
        head, _, rest = bytes(self.data).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        chunked = any(h.lower().replace(" ", "") == "transfer-encoding:chunked" for h in lines[1:])
        if not chunked:
            return status, rest.decode()
        body = bytearray()
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2:]
        return status, body.decode()


def kernel_queued(client_port: int, server_port: int) -> int | None:
    """Bytes of this connection queued in the kernels: the server's send queue + the client's receive
    queue, from /proc/net/tcp (None where that is not available)."""
    try:
        lines = open("/proc/net/tcp").read().splitlines()[1:]  # noqa: SIM115
    except OSError:
        return None
    total, seen = 0, 0
    for line in lines:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        lport, rport = int(local.split(":")[1], 16), int(remote.split(":")[1], 16)
        tx, rx = (int(q, 16) for q in queues.split(":"))
        if (lport, rport) == (server_port, client_port):
            total, seen = total + tx, seen + 1
        elif (lport, rport) == (client_port, server_port):
            total, seen = total + rx, seen + 1
    return total if seen == 2 else None


def _engine(c: httpx.Client) -> dict[str, Any]:
    return dict(c.get("/health").json()["engine"])


def check_slow_reader(base_url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The whole check (see the module docstring); returns what it measured, for messages."""
    headers = headers or {}

    def others(n: int) -> float:
        started = time.monotonic()
        with httpx.Client(base_url=base_url, timeout=60, headers=headers) as c:
            for _ in range(n):
                r = c.post("/v1/completions", json=FAST_BODY)
                assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n"), r.text[-300:]
        return time.monotonic() - started

    with httpx.Client(base_url=base_url, timeout=60, headers=headers) as c:
        solo = c.post("/v1/completions", json={**SLOW_BODY, "stream": False})
        assert solo.status_code == 200, solo.text[:500]
        expected = {ch["index"]: ch["text"] for ch in solo.json()["choices"]}
        baseline = others(5)

        slow = SlowReader(base_url, "/v1/completions", SLOW_BODY, headers)
        stop = threading.Event()
        trickled = {"bytes": 0}

        def trickle() -> None:  # 16 bytes every 20 ms while the others run: ~800 B/s
            while not stop.is_set() and not slow.eof:
                trickled["bytes"] += slow.read(16)
                time.sleep(0.02)

        try:
            deadline = time.monotonic() + 60
            while slow.pending() == 0:  # the slow stream has started
                assert time.monotonic() < deadline, "the slow stream never started"
                time.sleep(0.01)
            t = threading.Thread(target=trickle, daemon=True)
            t.start()
            loaded_time = others(5)
            # the engine has finished the slow request: every token of it is produced...
            deadline = time.monotonic() + 60
            while (m := _engine(c))["running"] or m["waiting"]:
                assert time.monotonic() < deadline, m
                time.sleep(0.05)
            stop.set()
            t.join(timeout=10)
            # ...while the client has read next to nothing, and the kernels hold little of it
            read_then = len(slow.data)
            queued = kernel_queued(slow.client_port, slow.server_port)
            assert not slow.eof and b"data: [DONE]" not in slow.data, "the slow stream was not slowed"
            slow.read_all()
        finally:
            stop.set()
            slow.close()
    status, raw = slow.response()
    total = len(slow.data)
    measured = {"baseline_s": round(baseline, 2), "loaded_s": round(loaded_time, 2), "stream_bytes": total,
                "read_while_others_ran": read_then, "kernel_queued": queued}
    assert status == 200, (status, raw[:300])
    texts, done = stream_choices(raw)
    assert done and raw.endswith("data: [DONE]\n\n"), raw[-300:]
    assert texts == expected, "the slow stream differs from the same request non-streamed"
    # back-pressure, shown: the stream is megabytes; when the engine had produced all of it, the
    # client had read a few KiB and both kernels held a small part: the rest was waiting in the
    # server, whose writes to this connection were blocked.
    assert total > 1 << 20, measured
    assert read_then < 64 * 1024, measured
    if queued is not None:
        assert read_then + queued < total // 2, measured
    # others were not held up behind it (generous: same order of time as without it)
    assert loaded_time < max(4 * baseline, baseline + 10), measured
    return measured
