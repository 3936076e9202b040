"""Strict but safe Server-Sent Events parser for OpenAI-style streams.

The suite needs framing *diagnostics* (which line broke the protocol, and how), not just
the events, so this is a small own parser rather than a library. It never raises on bad
input: every problem becomes a message in `framing_errors`, and whatever can still be
recovered is kept.

OpenAI-style framing::

    data: {"id": ...}\\n
    \\n
    data: [DONE]\\n
    \\n

Accepted lines: ``data:`` (with the customary single space, which is stripped), comments
(``:...``), ``event:``, ``id:``, ``retry:``, and blank lines ending an event. Recognised
lines ending in ``\\r\\n``, ``\\n`` or ``\\r`` (as the SSE specification allows).

Usage (incremental)::

    parser = SSEParser()
    for chunk in byte_chunks:
        parser.feed(chunk)
    result = parser.close()      # SSEResult

or ``parse_sse(data: bytes | str) -> SSEResult``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DONE = "[DONE]"
_KNOWN_FIELDS = ("event", "id", "retry")
_MAX_LINE_PREVIEW = 80


def _preview(text: str) -> str:
    text = text if len(text) <= _MAX_LINE_PREVIEW else text[:_MAX_LINE_PREVIEW] + "…"
    return repr(text)


@dataclass
class SSEEvent:
    """One dispatched event: its data lines joined with '\\n', and where it started."""

    data: str
    line: int  # 1-based line number of the event's first data line
    data_lines: int = 1
    event: str | None = None
    id: str | None = None


@dataclass
class SSEResult:
    chunks: list[dict[str, Any]] = field(default_factory=list)  # parsed JSON objects before [DONE]
    events: list[str] = field(default_factory=list)  # raw data payloads, in order (incl. [DONE] and after)
    done: bool = False
    framing_errors: list[str] = field(default_factory=list)
    after_done: list[str] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)  # `event:` values seen (e.g. "error")
    lines: int = 0


class SSEParser:
    """Incremental parser over raw bytes. `feed` any split of the stream; `close` at EOF."""

    def __init__(self, *, max_errors: int = 50) -> None:
        self.result = SSEResult()
        self._buffer = b""
        self._line_no = 0
        self._max_errors = max_errors
        self._suppressed = 0
        # the event being assembled
        self._data: list[str] = []
        self._data_start = 0
        self._event_name: str | None = None
        self._event_id: str | None = None
        self._pending_fields = False  # saw a field line (event:/id:/...) since the last blank line
        self._closed = False

    # -- input -------------------------------------------------------------------------
    def feed(self, data: bytes | str) -> None:
        if self._closed:
            return
        if isinstance(data, str):
            data = data.encode("utf-8")
        buffer = self._buffer + data
        start = 0
        length = len(buffer)
        while True:
            cr = buffer.find(b"\r", start)
            lf = buffer.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            if cr != -1 and (lf == -1 or cr < lf):
                if cr + 1 == length:
                    break  # a trailing CR may be the first half of CRLF: wait for more input
                end, nxt = cr, cr + 2 if buffer[cr + 1 : cr + 2] == b"\n" else cr + 1
            else:
                end, nxt = lf, lf + 1
            self._line(buffer[start:end])
            start = nxt
        self._buffer = buffer[start:]

    def close(self) -> SSEResult:
        """End of stream: flush, and report a missing [DONE] or an unterminated last event."""
        if self._closed:
            return self.result
        self._closed = True
        if self._buffer:
            if self._buffer.endswith(b"\r"):
                self._line(self._buffer[:-1])
                self._buffer = b""
            else:
                self._line(self._buffer)
                self._buffer = b""
                self._error(f"line {self._line_no}: stream ended in the middle of a line (no line terminator)")
        if self._data:
            self._error(
                f"line {self._data_start}: the last event is not terminated by a blank line"
            )
            self._dispatch()
        if not self.result.done:
            self._error(f"stream ended without 'data: {DONE}' ({len(self.result.chunks)} chunks received)")
        if self._suppressed:
            self.result.framing_errors.append(f"... and {self._suppressed} more framing errors")
        self.result.lines = self._line_no
        return self.result

    # -- internals ---------------------------------------------------------------------
    def _error(self, message: str) -> None:
        if len(self.result.framing_errors) < self._max_errors:
            self.result.framing_errors.append(message)
        else:
            self._suppressed += 1

    def _line(self, raw: bytes) -> None:
        self._line_no += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("utf-8", errors="replace")
            self._error(f"line {self._line_no}: not valid UTF-8")
        if self._line_no == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if line == "":
            self._dispatch()
            return
        if line.startswith(":"):
            return  # comment / keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            if not sep:
                value = ""
            elif not line.startswith("data: "):
                # `data:x` is valid SSE but not what OpenAI-style servers send; tolerated.
                pass
            if not self._data:
                self._data_start = self._line_no
            self._data.append(value)
            return
        if name in _KNOWN_FIELDS and sep:
            self._pending_fields = True
            if name == "event":
                self._event_name = value
                self.result.event_types.append(value)
            elif name == "id":
                self._event_id = value
            return
        if self.result.done:
            self.result.after_done.append(line)
        self._error(f"line {self._line_no}: expected 'data: ' prefix, got {_preview(line)}")

    def _dispatch(self) -> None:
        data_lines = self._data
        start = self._data_start
        event_name = self._event_name
        self._data = []
        self._event_name = None
        self._event_id = None
        self._pending_fields = False
        if not data_lines:
            return  # blank line with no data: nothing to dispatch (SSE spec)
        payload = "\n".join(data_lines)
        result = self.result
        result.events.append(payload)
        if result.done:
            result.after_done.append(payload)
            self._error(f"line {start}: data after 'data: {DONE}': {_preview(payload)}")
            return
        if payload.strip() == DONE:
            if len(data_lines) > 1:
                self._error(f"line {start}: '{DONE}' shares an event with other data lines")
            result.done = True
            return
        parsed = self._parse_json(payload)
        if parsed is not _INVALID:
            if len(data_lines) > 1:
                # legal SSE (multi-line data), but worth knowing about
                pass
            self._accept(parsed, start, event_name)
            return
        if len(data_lines) > 1:
            self._error(
                f"line {start}: {len(data_lines)} 'data:' lines in one event and they do not form one "
                "JSON value (missing blank-line separator between events?)"
            )
            # Recover: try each line as its own event.
            for offset, line in enumerate(data_lines):
                if result.done:
                    result.after_done.append(line)
                    self._error(f"line {start + offset}: data after 'data: {DONE}': {_preview(line)}")
                    continue
                if line.strip() == DONE:
                    result.done = True
                    continue
                item = self._parse_json(line)
                if item is _INVALID:
                    self._error(f"line {start + offset}: invalid JSON in data: {_preview(line)}")
                else:
                    self._accept(item, start + offset, event_name)
            return
        self._error(f"line {start}: invalid JSON in data: {_preview(payload)}")

    def _accept(self, parsed: Any, line: int, event_name: str | None) -> None:
        if isinstance(parsed, dict):
            self.result.chunks.append(parsed)
        else:
            self._error(f"line {line}: data is JSON but not an object: {_preview(json.dumps(parsed))}")
        if event_name not in (None, "", "message") and event_name != "error":
            self._error(f"line {line}: unexpected event type {event_name!r}")

    @staticmethod
    def _parse_json(text: str) -> Any:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return _INVALID


class _Invalid:
    pass


_INVALID: Any = _Invalid()


def parse_sse(data: bytes | str) -> SSEResult:
    """Parse a complete stream body."""
    parser = SSEParser()
    parser.feed(data)
    return parser.close()
