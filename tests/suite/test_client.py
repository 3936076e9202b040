"""Client: redaction, recording, timeouts, resets, size caps, cache and cost."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from conformance.client import Client, ResponseCache, TransportFailure
from conformance.results import Cost, Status

KEY = "sk-test-PLANTED-1234"
# A hung server holds on for HANG_S; the client must give up within WITHIN_S (its timeout plus slack for a
# loaded 2-core CI machine), far sooner than the hang would end on its own.
HANG_S = 30
WITHIN_S = 8

COMPLETION = {
    "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "text": "hi", "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def _dump(client: Client) -> str:
    return json.dumps([e.model_dump(mode="json") for e in client.exchanges])


def test_redacts_key_everywhere(raw_server, h):
    # The server echoes the key back in a header and in the body.
    def handler(conn, request, stop):
        body = {"error": {"message": f"bad key {KEY}", "type": "invalid_request_error"}, "echo": request.decode()}
        conn.sendall(h.http_response(401, json.dumps(body).encode(), extra=f"X-Echo: {KEY}\r\n"))

    server = raw_server(handler)
    client = Client(server.base_url, KEY, timeout=5, cost=Cost(), model="m")
    resp = client.post(f"/completions?key={KEY}", {"prompt": f"my key is {KEY}", "model": "m"})
    assert resp.status == 401
    assert KEY in resp.text  # the check sees the real body...
    dumped = _dump(client)
    assert KEY not in dumped  # ...the evidence never does
    assert "Bearer ***" in dumped
    exchange = client.exchanges[0]
    assert exchange.request.headers["authorization"] == "Bearer ***"
    assert exchange.response is not None and exchange.response.headers["x-echo"] == "***"
    assert exchange.request.body["prompt"] == "my key is ***"


def test_redacts_key_in_transport_errors(closed_port):
    client = Client(f"http://{KEY}@127.0.0.1:{closed_port}/v1", KEY, timeout=2, cost=Cost())
    with pytest.raises(TransportFailure) as info:
        client.get(f"/models?k={KEY}")
    assert info.value.status == Status.ERROR
    assert KEY not in str(info.value)
    assert "\n" not in str(info.value)
    assert KEY not in _dump(client)
    assert client.exchanges[0].error


def test_non_json_body_gives_none(raw_server, h):
    server = raw_server(lambda conn, req, stop: conn.sendall(h.http_response(200, b"<html>oops", "text/html")))
    client = Client(server.base_url, None, timeout=5, cost=Cost())
    resp = client.get("/models")
    assert resp.status == 200 and resp.json is None and resp.text == "<html>oops"
    assert client.exchanges[0].response.body == "<html>oops"


def test_hanging_server_times_out(raw_server):
    server = raw_server(lambda conn, req, stop: stop.wait(HANG_S))
    client = Client(server.base_url, None, timeout=1, cost=Cost())
    started = time.monotonic()
    with pytest.raises(TransportFailure) as info:
        client.post("/completions", {"prompt": "x"})
    assert info.value.status == Status.TIMEOUT
    assert time.monotonic() - started < WITHIN_S
    assert client.exchanges[-1].error


def test_reset_is_error(raw_server):
    def handler(conn, request, stop):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # RST

    server = raw_server(handler)
    client = Client(server.base_url, None, timeout=2, cost=Cost())
    with pytest.raises(TransportFailure) as info:
        client.post("/completions", {"prompt": "x"})
    assert info.value.status == Status.ERROR
    assert "\n" not in str(info.value)


def _stream_head() -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_endless_stream_hits_total_deadline(raw_server):
    def handler(conn, request, stop):
        conn.sendall(_stream_head())
        while not stop.is_set():
            conn.sendall(_chunk(b'data: {"choices":[{"index":0,"text":"a"}]}\n\n'))
            time.sleep(0.05)

    server = raw_server(handler)
    client = Client(server.base_url, None, timeout=1.5, cost=Cost())
    started = time.monotonic()
    with pytest.raises(TransportFailure) as info:
        client.stream_completions(prompt="x")
    assert info.value.status == Status.TIMEOUT
    assert time.monotonic() - started < WITHIN_S
    exchange = client.exchanges[-1]
    assert exchange.response is not None and exchange.response.events  # partial evidence kept


def test_trickling_then_silent_stream_hits_deadline(raw_server):
    def handler(conn, request, stop):
        conn.sendall(_stream_head())
        time.sleep(0.8)
        conn.sendall(_chunk(b'data: {"choices":[]}\n\n'))
        stop.wait(HANG_S)

    server = raw_server(handler)
    client = Client(server.base_url, None, timeout=1.2, cost=Cost())
    started = time.monotonic()
    with pytest.raises(TransportFailure) as info:
        client.stream_completions(prompt="x")
    assert info.value.status == Status.TIMEOUT
    assert time.monotonic() - started < WITHIN_S


def test_stream_size_cap(raw_server):
    def handler(conn, request, stop):
        conn.sendall(_stream_head())
        payload = _chunk(b"data: " + b"x" * 4000 + b"\n\n")
        for _ in range(100):
            if stop.is_set():
                return
            conn.sendall(payload)

    server = raw_server(handler)
    client = Client(server.base_url, None, timeout=5, cost=Cost(), max_body_bytes=50_000)
    with pytest.raises(TransportFailure) as info:
        client.stream_completions(prompt="x")
    assert info.value.status == Status.ERROR and "exceeded" in str(info.value)


def test_stream_parsed_and_usage_costed(raw_server):
    events = [
        {"id": "c", "choices": [{"index": 0, "text": "he", "finish_reason": None}]},
        {"id": "c", "choices": [{"index": 0, "text": "llo", "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}},
    ]

    def handler(conn, request, stop):
        conn.sendall(_stream_head())
        for event in events:
            conn.sendall(_chunk(b"data: " + json.dumps(event).encode() + b"\n\n"))
        conn.sendall(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

    server = raw_server(handler)
    cost = Cost()
    client = Client(server.base_url, None, timeout=5, cost=cost, model="m")
    stream = client.stream_completions(prompt="x", max_tokens=2)
    assert stream.status == 200 and stream.done and stream.framing_errors == []
    assert stream.content_type.startswith("text/event-stream")
    assert [c["choices"][0]["text"] for c in stream.chunks] == ["he", "llo"]
    assert cost.requests == 1 and cost.prompt_tokens == 4 and cost.completion_tokens == 2
    request = json.loads(server.requests[0].split(b"\r\n\r\n", 1)[1])
    assert request == {"model": "m", "prompt": "x", "max_tokens": 2, "stream": True}


def test_stream_error_status_gives_error_body(raw_server, h):
    server = raw_server(lambda conn, req, stop: conn.sendall(h.json_response({"error": {"message": "no"}}, 400)))
    client = Client(server.base_url, None, timeout=5, cost=Cost())
    stream = client.stream_chat(messages=[])
    assert stream.status == 400 and stream.error_body == {"error": {"message": "no"}} and stream.chunks == []


def test_greedy_cache_and_cost(raw_server, h):
    server = raw_server(lambda conn, req, stop: conn.sendall(h.json_response(COMPLETION)))
    cost = Cost()
    client = Client(server.base_url, None, timeout=5, cost=cost, model="m", cache=ResponseCache())
    other = client.fork()
    first = client.completions(prompt="x", temperature=0, max_tokens=2)
    second = other.completions(max_tokens=2, prompt="x", temperature=0)  # same body, other key order
    assert first.json == second.json
    assert len(server.requests) == 1
    assert cost.requests == 1 and cost.total_tokens == 5
    assert "cached" in (other.exchanges[0].note or "")
    client.completions(prompt="x", temperature=0, max_tokens=2, cache=False)
    client.completions(prompt="x", temperature=0.5, max_tokens=2)
    assert len(server.requests) == 3


def test_shared_cost_is_thread_safe(raw_server, h):
    server = raw_server(lambda conn, req, stop: conn.sendall(h.json_response(COMPLETION)))
    cost = Cost()
    root = Client(server.base_url, None, timeout=5, cost=cost)

    def work():
        client = root.fork()
        for _ in range(5):
            client.post("/completions", {"prompt": "x"})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cost.requests == 20 and cost.prompt_tokens == 60
    root.close()


def test_long_request_body_is_truncated_in_evidence(raw_server, h):
    server = raw_server(lambda conn, req, stop: conn.sendall(h.json_response(COMPLETION)))
    client = Client(server.base_url, None, timeout=5, cost=Cost())
    client.post("/completions", {"prompt": "word " * 10000, "ids": list(range(5000))})
    body = client.exchanges[0].request.body
    assert len(body["prompt"]) < 3000 and len(body["ids"]) <= 201


def test_raw_body_sent_verbatim(raw_server, h):
    server = raw_server(lambda conn, req, stop: conn.sendall(h.json_response({"error": {}}, 400)))
    client = Client(server.base_url, KEY, timeout=5, cost=Cost())
    resp = client.post("/completions", None, raw=b'{"prompt": ', auth=False)
    assert resp.status == 400
    assert server.requests[0].endswith(b'{"prompt": ')
    assert b"authorization" not in server.requests[0].lower()
