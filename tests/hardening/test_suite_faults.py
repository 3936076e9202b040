"""The suite under faults not covered by tests/suite_e2e: a gigantic single SSE event, a gigantic
non-streamed body and an endless stream of small events (all cut at the client's 16 MiB cap, memory
bounded, evidence kept but truncated) and a server that sends its headers and then nothing (bounded
by --timeout). Raw loopback servers, no model.

Through the `conformance run` CLI (exit 1, no traceback, evidence in results.json for the failing
requirement, the planted key nowhere): those raw servers, and the fakes of tests/fakes (imported,
not modified) that reset mid-stream, hang mid-stream, answer with an HTML error page, or send
malformed SSE (two events without a blank line between them; a chunk that is not JSON).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.server import FakeConfig, serve_fake

from conformance.client import MAX_BODY_BYTES, Client, TransportFailure
from conformance.redact import TEXT_LIMIT
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
    # the evidence is recorded, and small: the 16 MiB received are not copied into it
    exchange = client.exchanges[-1]
    assert exchange.error and ("exceed" in exchange.error or str(MAX_BODY_BYTES) in exchange.error)
    assert exchange.response is not None and exchange.response.status == 200
    recorded = exchange.model_dump_json()
    assert len(recorded) < 64 * 1024, f"{len(recorded)} bytes of evidence"
    if mode == "giant-json":  # the body's start and end are kept, the middle cut out
        body = exchange.response.body
        assert isinstance(body, str) and body.startswith('{"text": "xxx') and "characters omitted" in body
        assert len(body) <= TEXT_LIMIT + 100
    assert PLANTED_KEY not in recorded


def test_endless_stream_is_cut_at_the_cap_with_bounded_memory() -> None:
    """Small events forever (tests/fakes' endless_stream): stopped at the 16 MiB cap, not at the timeout.

    Unlike one gigantic event, ~80k small events are each kept (raw and parsed) until the cap, so the
    peak is higher per byte received (measured ~8.2x the cap); what matters is that it is bounded by
    the cap, whatever the stream's length.
    """
    with serve_fake(FakeConfig(profile="openai", api_key=PLANTED_KEY, endless_stream=True)) as url, Client(
            url, PLANTED_KEY, 60, Cost()) as client:
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(TransportFailure) as info:
                client.stream_completions(model="fake-model", prompt="x", max_tokens=2)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert info.value.status == Status.ERROR, info.value  # the cap, not the 60 s timeout
    assert "exceed" in str(info.value) or str(MAX_BODY_BYTES) in str(info.value), info.value
    assert time.monotonic() - started < 60
    assert peak < 12 * MAX_BODY_BYTES, f"peak {peak >> 20} MiB for a {MAX_BODY_BYTES >> 20} MiB cap"
    exchange = client.exchanges[-1]
    assert exchange.response is not None and exchange.response.status == 200
    events = exchange.response.events or []
    assert events and any("omitted" in e for e in events), events[:3]  # head and tail kept, middle cut
    recorded = exchange.model_dump_json()
    assert len(recorded) < 1 << 20, f"{len(recorded)} bytes of evidence"
    assert PLANTED_KEY not in recorded + str(info.value)


def test_headers_then_nothing_times_out() -> None:
    with raw_server("headers-only") as url, Client(url, PLANTED_KEY, 2, Cost()) as client:
        started = time.monotonic()
        with pytest.raises(TransportFailure) as info:
            client.stream_completions(model="m", prompt="x", max_tokens=2)
    assert info.value.status == Status.TIMEOUT
    assert time.monotonic() - started < 15


def _requirement(report_dir: Path, rid: str) -> dict[str, Any]:
    data = json.loads((report_dir / "results.json").read_text())
    assert data["verdict"] == "fail", data["summary"]
    return dict(next(r for r in data["requirements"] if r["id"] == rid))


def _assert_evidence(req: dict[str, Any], statuses: set[str]) -> list[dict[str, Any]]:
    """The requirement failed, with evidence: every exchange has a request and a response or an error."""
    assert req["status"] in statuses, (req["id"], req["status"], req.get("evidence"))
    exchanges = [x for e in req["evidence"] for x in e["exchanges"]]
    assert exchanges, f"{req['id']}: no exchange recorded"
    for x in exchanges:
        assert x["request"]["method"] and x["request"]["url"].startswith("http://127.0.0.1:")
        assert x.get("response") is not None or x.get("error"), x
    return exchanges


def _run_cli(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], only: list[str],
             timeout: str, model: str = "m") -> tuple[int, str]:
    from conformance.cli import main

    started = time.monotonic()
    code = main(["run", "--base-url", url, "--api-key", PLANTED_KEY, "--model", model,
                 "--profile", "openai", *(a for rid in only for a in ("--only", rid)),
                 "--timeout", timeout, "--max-examples", "1", "--context-length", "512",
                 "--report-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert time.monotonic() - started < 90
    assert code == 1, out + err
    assert "Traceback" not in out + err
    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert (tmp_path / "results.json").is_file()
    for text in [out, err, *written]:
        assert PLANTED_KEY not in text
        assert "PLANTED-hardening" not in text
    return code, out + err


@pytest.mark.parametrize("mode", ["giant-event", "headers-only"])
def test_cli_exits_1_without_traceback(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with raw_server(mode) as url:
        _run_cli(url, tmp_path, capsys, ["stream.done"], "3")
    req = _requirement(tmp_path, "stream.done")
    if mode == "giant-event":
        exchanges = _assert_evidence(req, {"error", "fail"})
        assert any(x.get("error") and "exceed" in x["error"] for x in exchanges), exchanges
        # the 16 MiB read are not in the report: the evidence is cut
        assert (tmp_path / "results.json").stat().st_size < 1 << 20
    else:
        exchanges = _assert_evidence(req, {"timeout"})
        assert any(x.get("error") for x in exchanges), exchanges


# fake knobs -> the requirements to run and the statuses their failure must have
CLI_FAKES: dict[str, tuple[dict[str, Any], list[str], set[str]]] = {
    "reset-mid-stream": ({"reset": True}, ["stream.done"], {"error"}),
    "hang-mid-stream": ({"hang": "stream"}, ["stream.done"], {"timeout"}),
    "html-error-page": ({"html_error_page": True}, ["schema.completion.response", "stream.done"],
                        {"fail", "error"}),
    "merged-events": ({"merged_events": True}, ["stream.framing"], {"fail", "error"}),
    "bad-json-chunk": ({"bad_json_chunk": True}, ["stream.framing"], {"fail", "error"}),
}


@pytest.mark.parametrize("fault", sorted(CLI_FAKES))
def test_cli_against_faulty_fakes_exits_1_with_evidence(fault: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    knobs, only, statuses = CLI_FAKES[fault]
    with serve_fake(FakeConfig(profile="openai", api_key=PLANTED_KEY, **knobs)) as url:
        _run_cli(url, tmp_path, capsys, only, "2", model=FakeConfig().model)
    for rid in only:
        exchanges = _assert_evidence(_requirement(tmp_path, rid), statuses)
        # the endpoint was reached as configured: the fault, not a setup error, made it fail
        assert not any("model_not_found" in json.dumps(x) for x in exchanges), exchanges
        if fault == "html-error-page":  # the page itself is the evidence
            assert any((x.get("response") or {}).get("status") == 500 for x in exchanges), exchanges
        if fault in ("merged-events", "bad-json-chunk"):  # the malformed stream is kept
            assert any((x.get("response") or {}).get("events") for x in exchanges), exchanges
