"""HTTP client used by every scenario: records each exchange (redacted) as evidence.

INTERFACE (implementation to be completed; signatures are the contract scenarios rely on).

- Sync, built on httpx, thread-safe (scenarios run in a thread pool, each with its own
  Client sharing one httpx connection pool and one Cost counter).
- Every request is recorded in `self.exchanges` as conformance.results.Exchange with the
  Authorization header and the API key redacted everywhere (headers, bodies, URLs, errors).
- Timeouts (`timeout` seconds: connect, read and a total deadline for streams), connection
  resets, non-JSON bodies, broken SSE framing, oversized/endless streams never raise anything
  but TransportFailure (status ERROR or TIMEOUT) or, for a response that arrived but is not
  what the protocol says, `EndpointError` carrying the requirement id the caller names.
- Greedy (temperature 0) non-streaming requests may be served from a per-run cache keyed on
  the request body, to keep runs cheap; `cache=False` forces a real request.
- Cost: every response's `usage` (or the streamed usage) adds to the shared Cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conformance.results import Cost, Exchange, Status


class TransportFailure(Exception):
    """The exchange itself failed: unreachable, reset, timeout, unparseable. Scenario stops."""

    def __init__(self, message: str, status: Status = Status.ERROR) -> None:
        super().__init__(message)
        self.status = status


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


class Client:
    def __init__(self, base_url: str, api_key: str | None, timeout: float, cost: Cost) -> None:
        raise NotImplementedError

    exchanges: list[Exchange]

    def get(self, path: str, *, headers: dict[str, str] | None = None, auth: bool = True,
            note: str | None = None) -> Response:
        """GET base_url + path (path like "/models")."""
        raise NotImplementedError

    def post(self, path: str, body: Any, *, headers: dict[str, str] | None = None, auth: bool = True,
             raw: bytes | None = None, note: str | None = None, cache: bool = True) -> Response:
        """POST JSON (or `raw` bytes as given, for malformed-body tests). Never raises on 4xx/5xx."""
        raise NotImplementedError

    def stream(self, path: str, body: Any, *, headers: dict[str, str] | None = None,
               note: str | None = None) -> StreamResponse:
        """POST with stream=true semantics and parse SSE; bounded in time and size."""
        raise NotImplementedError

    # Convenience wrappers: fill in `model` (completions: target.model, chat: target.chat_model).
    def completions(self, *, note: str | None = None, cache: bool = True, **body: Any) -> Response:
        raise NotImplementedError

    def chat(self, *, note: str | None = None, cache: bool = True, **body: Any) -> Response:
        raise NotImplementedError

    def stream_completions(self, *, note: str | None = None, **body: Any) -> StreamResponse:
        raise NotImplementedError

    def stream_chat(self, *, note: str | None = None, **body: Any) -> StreamResponse:
        raise NotImplementedError
