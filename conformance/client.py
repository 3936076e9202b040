"""HTTP client used by every scenario: records each exchange (redacted) as evidence.

- Sync, built on httpx, thread-safe (scenarios run in a thread pool, each with its own
  Client sharing one httpx connection pool and one Cost counter: see `Client.fork`).
- Every request is recorded in `self.exchanges` as conformance.results.Exchange with the
  Authorization header and the API key redacted everywhere (headers, bodies, URLs, errors).
- Timeouts (`timeout` seconds: connect, read and a total deadline for every response body,
  streamed or not), connection resets, non-JSON bodies, broken SSE framing, oversized/endless
  streams never raise anything but TransportFailure (status ERROR or TIMEOUT). A response
  that arrived but is not what the protocol says is returned as is (`Response.json` is None
  for a non-JSON body, `StreamResponse.framing_errors` lists broken framing): the check decides.
- Greedy (temperature 0) non-streaming requests may be served from a per-run cache keyed on
  the request path and body, to keep runs cheap; `cache=False` forces a real request.
- Cost: every response's `usage` (or the streamed usage) adds to the shared Cost.
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance import __version__
from conformance.redact import Redactor, shrink, truncate_events, truncate_text
from conformance.results import Cost, Exchange, HttpRequestRecord, HttpResponseRecord, Status
from conformance.sse import SSEParser

MAX_BODY_BYTES = 16 * 1024 * 1024  # cap on one response body (streamed or not)
USER_AGENT = f"openai-conformance/{__version__}"


class TransportFailure(Exception):
    """The exchange itself failed: unreachable, reset, timeout, unparseable. Scenario stops."""

    def __init__(self, message: str, status: Status = Status.ERROR, exchange: Exchange | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.exchange = exchange


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    json: Any  # parsed body; None when the body is not JSON
    text: str
    exchange: Exchange


@dataclass
class StreamResponse:
    """A streamed response, parsed strictly (see conformance/sse.py)."""

    status: int
    headers: dict[str, str]
    content_type: str
    chunks: list[dict[str, Any]]  # parsed JSON of each `data:` event before [DONE], in order
    done: bool  # `data: [DONE]` was received
    framing_errors: list[str] = field(default_factory=list)  # e.g. "line 3: expected 'data: ' prefix"
    after_done: list[str] = field(default_factory=list)  # anything received after [DONE]
    error_body: Any = None  # parsed JSON body when the status is not 200 (not a stream)
    exchange: Exchange | None = None
    events: list[str] = field(default_factory=list)  # every raw `data:` payload, in order (not truncated)
    text: str = ""  # the raw body when it was not parsed as a stream (status != 200)


@dataclass
class _CachedResponse:
    status: int
    headers: dict[str, str]
    json: Any
    text: str
    exchange: Exchange


class ResponseCache:
    """Thread-safe cache of greedy non-streamed responses, keyed by canonical JSON of (path, body)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, _CachedResponse] = {}
        self.hits = 0

    @staticmethod
    def key(path: str, body: Any) -> str | None:
        if not isinstance(body, dict) or body.get("stream") or body.get("temperature") != 0:
            return None
        try:
            return json.dumps([path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        except (TypeError, ValueError):
            return None

    def get(self, key: str) -> _CachedResponse | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self.hits += 1
            return item

    def put(self, key: str, item: _CachedResponse) -> None:
        with self._lock:
            self._items[key] = item


class _Shared:
    """What every Client of one run shares: the connection pool, the cost, the cache."""

    def __init__(self, timeout: float, cost: Cost, cache: ResponseCache | None, http: httpx.Client | None) -> None:
        self.cost = cost
        self.cost_lock = threading.Lock()
        self.cache = cache
        self.owns_http = http is None
        connect = min(timeout, 30.0)
        self.http = http or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect, pool=timeout),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
        )


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _usage_numbers(usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    prompt = prompt if isinstance(prompt, int) and not isinstance(prompt, bool) and prompt >= 0 else 0
    completion = (
        completion if isinstance(completion, int) and not isinstance(completion, bool) and completion >= 0 else 0
    )
    return prompt, completion


class _Watchdog:
    """Shuts the socket down at the deadline so a blocked read returns (a trickling body ends)."""

    def __init__(self, response: httpx.Response, seconds: float) -> None:
        self.fired = False
        self._response = response
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        stream = self._response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        else:  # pragma: no cover - transports without a socket
            with contextlib.suppress(Exception):
                self._response.close()

    def cancel(self) -> None:
        self._timer.cancel()


class Client:
    """Recorded, redacted HTTP client. One per scenario run; `fork()` shares pool, cost and cache."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float,
        cost: Cost,
        *,
        model: str | None = None,
        chat_model: str | None = None,
        cache: ResponseCache | bool | None = None,
        http: httpx.Client | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        _shared: _Shared | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.timeout = float(timeout)
        self.model = model
        self.chat_model = chat_model if chat_model is not None else model
        self.max_body_bytes = max_body_bytes
        self.redactor = Redactor(self.api_key)
        if _shared is None:
            resolved_cache = ResponseCache() if cache is True else (cache or None)
            _shared = _Shared(self.timeout, cost, resolved_cache, http)
        self._shared = _shared
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def cost(self) -> Cost:
        return self._shared.cost

    @property
    def cache(self) -> ResponseCache | None:
        return self._shared.cache

    def fork(self) -> Client:
        """A new Client (own exchange list) sharing this one's connection pool, cost and cache."""
        return Client(
            self.base_url, self.api_key, self.timeout, self._shared.cost,
            model=self.model, chat_model=self.chat_model, max_body_bytes=self.max_body_bytes,
            _shared=self._shared,
        )

    def close(self) -> None:
        if self._shared.owns_http:
            self._shared.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def redact(self, value: Any) -> Any:
        """Redact the API key from any string or JSON-like value."""
        return self.redactor.value(value)

    # -- public API --------------------------------------------------------------------
    def get(self, path: str, *, headers: dict[str, str] | None = None, auth: bool = True,
            note: str | None = None) -> Response:
        """GET base_url + path (path like "/models")."""
        return self._plain("GET", path, None, headers=headers, auth=auth, raw=None, note=note, cache=False)

    def post(self, path: str, body: Any, *, headers: dict[str, str] | None = None, auth: bool = True,
             raw: bytes | None = None, note: str | None = None, cache: bool = True) -> Response:
        """POST JSON (or `raw` bytes as given, for malformed-body tests). Never raises on 4xx/5xx."""
        return self._plain("POST", path, body, headers=headers, auth=auth, raw=raw, note=note, cache=cache)

    def stream(self, path: str, body: Any, *, headers: dict[str, str] | None = None,
               note: str | None = None, auth: bool = True) -> StreamResponse:
        """POST with stream=true semantics and parse SSE; bounded in time and size."""
        if isinstance(body, dict) and "stream" not in body:
            body = {**body, "stream": True}
        request = self._build("POST", path, body, headers=headers, auth=auth, raw=None)
        record = self._request_record(request, body, None)
        started = time.monotonic()
        parser = SSEParser()
        raw_body = bytearray()
        status = 0
        resp_headers: dict[str, str] = {}
        content_type = ""
        state = _Progress()

        def on_chunk(data: bytes) -> None:
            if status == 200:
                parser.feed(data)
            else:
                raw_body.extend(data)

        try:
            with self._send(request) as response:
                status = response.status_code
                resp_headers = self.redactor.headers(response.headers)
                content_type = response.headers.get("content-type", "")
                self._read_body(response, started, on_chunk, state)
        except TransportFailure as failure:
            events = parser.result.events
            error = self.redactor.text(str(failure))
            exchange = Exchange(
                request=record,
                response=HttpResponseRecord(
                    status=status or None, headers=resp_headers,
                    body=self._body_evidence(bytes(raw_body))[0] if raw_body else None,
                    events=self.redactor.value(truncate_events(events)) if status == 200 else None,
                    elapsed_s=round(time.monotonic() - started, 3),
                ) if status else None,
                error=error, note=note,
            )
            self._record(exchange, real=True)
            failure.exchange = exchange
            if status == 200 and events:
                failure.args = (f"{failure.args[0]} (after {len(events)} events)",)
            raise
        elapsed = round(time.monotonic() - started, 3)
        if status == 200:
            result = parser.close()
            usage = None
            for chunk in result.chunks:
                if isinstance(chunk, dict) and chunk.get("usage"):
                    usage = chunk["usage"]
            exchange = Exchange(
                request=record,
                response=HttpResponseRecord(
                    status=status, headers=resp_headers,
                    events=self.redactor.value(truncate_events(result.events)), elapsed_s=elapsed,
                ),
                error=self.redactor.text("; ".join(result.framing_errors[:5])) or None, note=note,
            )
            self._record(exchange, real=True, usage=usage)
            return StreamResponse(
                status=status, headers=resp_headers, content_type=content_type, chunks=result.chunks,
                done=result.done, framing_errors=result.framing_errors, after_done=result.after_done,
                exchange=exchange, events=result.events,
            )
        evidence_body, parsed, text = self._body_evidence(bytes(raw_body))
        exchange = Exchange(
            request=record,
            response=HttpResponseRecord(status=status, headers=resp_headers, body=evidence_body, elapsed_s=elapsed),
            note=note,
        )
        self._record(exchange, real=True, usage=parsed.get("usage") if isinstance(parsed, dict) else None)
        return StreamResponse(
            status=status, headers=resp_headers, content_type=content_type, chunks=[], done=False,
            error_body=parsed, exchange=exchange, text=text,
        )

    # Convenience wrappers: fill in `model` (completions: target.model, chat: target.chat_model).
    def completions(self, *, note: str | None = None, cache: bool = True, **body: Any) -> Response:
        return self.post("/completions", self._with_model(body, self.model), note=note, cache=cache)

    def chat(self, *, note: str | None = None, cache: bool = True, **body: Any) -> Response:
        return self.post("/chat/completions", self._with_model(body, self.chat_model), note=note, cache=cache)

    def stream_completions(self, *, note: str | None = None, **body: Any) -> StreamResponse:
        return self.stream("/completions", {**self._with_model(body, self.model), "stream": True}, note=note)

    def stream_chat(self, *, note: str | None = None, **body: Any) -> StreamResponse:
        return self.stream("/chat/completions", {**self._with_model(body, self.chat_model), "stream": True}, note=note)

    # -- internals ---------------------------------------------------------------------
    @staticmethod
    def _with_model(body: dict[str, Any], model: str | None) -> dict[str, Any]:
        if "model" in body or model is None:
            return dict(body)
        return {"model": model, **body}

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + ("" if path.startswith("/") else "/") + path

    def _build(self, method: str, path: str, body: Any, *, headers: dict[str, str] | None, auth: bool,
               raw: bytes | None) -> httpx.Request:
        merged: dict[str, str] = {}
        if auth and self.api_key:
            merged["Authorization"] = f"Bearer {self.api_key}"
        content: bytes | None = None
        if raw is not None:
            content = raw
            merged["Content-Type"] = "application/json"
        elif body is not None:
            content = json.dumps(body, ensure_ascii=False).encode("utf-8")
            merged["Content-Type"] = "application/json"
        for name, value in (headers or {}).items():
            for existing in [k for k in merged if k.lower() == name.lower()]:
                del merged[existing]
            merged[name] = value
        try:
            return self._shared.http.build_request(method, self.url(path), headers=merged, content=content)
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            raise TransportFailure(self.redactor.text(f"invalid request: {_one_line(str(exc))}")) from None

    def _request_record(self, request: httpx.Request, body: Any, raw: bytes | None) -> HttpRequestRecord:
        if raw is not None:
            evidence: Any = truncate_text(raw.decode("utf-8", errors="replace"))
        else:
            evidence = shrink(body) if body is not None else None
        return HttpRequestRecord(
            method=request.method,
            url=self.redactor.text(str(request.url)),
            headers=self.redactor.headers(request.headers),
            body=self.redactor.value(evidence),
        )

    def _send(self, request: httpx.Request) -> _SendContext:
        return _SendContext(self, request)

    def _classify(self, exc: BaseException) -> TransportFailure:
        """Turn an httpx/OS exception into a one-line TransportFailure."""
        detail = _one_line(str(exc) or type(exc).__name__)
        if isinstance(exc, httpx.TimeoutException):
            kind = {
                httpx.ConnectTimeout: "connect", httpx.ReadTimeout: "read",
                httpx.WriteTimeout: "write", httpx.PoolTimeout: "connection pool",
            }.get(type(exc), "")
            message = f"timed out after {self.timeout:g}s ({kind} timeout)" if kind else f"timed out: {detail}"
            return TransportFailure(self.redactor.text(message), Status.TIMEOUT)
        if isinstance(exc, httpx.ConnectError):
            message = f"cannot connect to {self.base_url}: {detail}"
        elif isinstance(exc, httpx.RemoteProtocolError):
            message = f"protocol error: {detail}"
        elif isinstance(exc, httpx.ReadError):
            message = f"connection reset or broken while reading the response: {detail}"
        elif isinstance(exc, httpx.WriteError):
            message = f"connection broken while sending the request: {detail}"
        elif isinstance(exc, httpx.DecodingError):
            message = f"cannot decode the response body: {detail}"
        elif isinstance(exc, httpx.TooManyRedirects | httpx.UnsupportedProtocol | httpx.InvalidURL):
            message = f"invalid request: {detail}"
        else:
            message = f"{type(exc).__name__}: {detail}"
        return TransportFailure(self.redactor.text(message), Status.ERROR)

    def _read_body(self, response: httpx.Response, started: float, on_chunk: Any, state: _Progress) -> None:
        remaining = self.timeout - (time.monotonic() - started)
        watchdog = _Watchdog(response, remaining)
        try:
            for data in response.iter_bytes():
                state.bytes += len(data)
                if state.bytes > self.max_body_bytes:
                    raise TransportFailure(
                        f"stream exceeded {self.max_body_bytes} bytes; stopped reading", Status.ERROR
                    )
                on_chunk(data)
                if watchdog.fired or time.monotonic() - started > self.timeout:
                    raise TransportFailure(
                        f"response not complete within {self.timeout:g}s (total deadline; "
                        f"{state.bytes} bytes received)", Status.TIMEOUT,
                    )
        except TransportFailure:
            raise
        except (httpx.HTTPError, OSError) as exc:
            if watchdog.fired:
                raise TransportFailure(
                    f"response not complete within {self.timeout:g}s (total deadline; "
                    f"{state.bytes} bytes received)", Status.TIMEOUT,
                ) from None
            raise self._classify(exc) from None
        finally:
            watchdog.cancel()
        if watchdog.fired:
            raise TransportFailure(
                f"response not complete within {self.timeout:g}s (total deadline; {state.bytes} bytes received)",
                Status.TIMEOUT,
            )

    def _body_evidence(self, content: bytes) -> tuple[Any, Any, str]:
        """(evidence body, parsed JSON or None, full text)."""
        text = content.decode("utf-8", errors="replace")
        parsed: Any = None
        is_json = False
        if text.strip():
            try:
                parsed = json.loads(text)
                is_json = True
            except (ValueError, RecursionError):
                parsed = None
        evidence = shrink(parsed) if is_json else truncate_text(text)
        return self.redactor.value(evidence), parsed, text

    def _plain(self, method: str, path: str, body: Any, *, headers: dict[str, str] | None, auth: bool,
               raw: bytes | None, note: str | None, cache: bool) -> Response:
        cache_key = None
        if (cache and self._shared.cache is not None and raw is None and headers is None and auth
                and method == "POST"):
            cache_key = ResponseCache.key(path, body)
        if cache_key is not None and self._shared.cache is not None:
            hit = self._shared.cache.get(cache_key)
            if hit is not None:
                exchange = hit.exchange.model_copy(deep=True)
                exchange.note = f"{note} (cached)" if note else "(cached response)"
                self._record(exchange, real=False)
                return Response(hit.status, dict(hit.headers), copy.deepcopy(hit.json), hit.text, exchange)

        request = self._build(method, path, body, headers=headers, auth=auth, raw=raw)
        record = self._request_record(request, body, raw)
        started = time.monotonic()
        content = bytearray()
        status = 0
        resp_headers: dict[str, str] = {}
        try:
            with self._send(request) as response:
                status = response.status_code
                resp_headers = self.redactor.headers(response.headers)
                self._read_body(response, started, content.extend, _Progress())
        except TransportFailure as failure:
            exchange = Exchange(
                request=record,
                response=HttpResponseRecord(
                    status=status, headers=resp_headers, body=self._body_evidence(bytes(content))[0] or None,
                    elapsed_s=round(time.monotonic() - started, 3),
                ) if status else None,
                error=self.redactor.text(str(failure)), note=note,
            )
            self._record(exchange, real=True)
            failure.exchange = exchange
            raise
        evidence, parsed, text = self._body_evidence(bytes(content))
        exchange = Exchange(
            request=record,
            response=HttpResponseRecord(
                status=status, headers=resp_headers, body=evidence,
                elapsed_s=round(time.monotonic() - started, 3),
            ),
            note=note,
        )
        self._record(exchange, real=True, usage=parsed.get("usage") if isinstance(parsed, dict) else None)
        if cache_key is not None and self._shared.cache is not None and status == 200 and parsed is not None:
            self._shared.cache.put(cache_key, _CachedResponse(status, resp_headers, copy.deepcopy(parsed), text,
                                                              exchange.model_copy(deep=True)))
        return Response(status, resp_headers, parsed, text, exchange)

    def _record(self, exchange: Exchange, *, real: bool, usage: Any = None) -> None:
        with self._lock:
            self.exchanges.append(exchange)
        if not real:
            return
        numbers = _usage_numbers(usage)
        with self._shared.cost_lock:
            self._shared.cost.requests += 1
            if numbers:
                self._shared.cost.prompt_tokens += numbers[0]
                self._shared.cost.completion_tokens += numbers[1]


@dataclass
class _Progress:
    bytes: int = 0


class _SendContext:
    """`with client._send(request) as response`: sends with stream=True, maps errors, always closes."""

    def __init__(self, client: Client, request: httpx.Request) -> None:
        self._client = client
        self._request = request
        self._response: httpx.Response | None = None

    def __enter__(self) -> httpx.Response:
        try:
            self._response = self._client._shared.http.send(self._request, stream=True)
        except (httpx.HTTPError, OSError) as exc:
            raise self._client._classify(exc) from None
        return self._response

    def __exit__(self, *exc: object) -> None:
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()
