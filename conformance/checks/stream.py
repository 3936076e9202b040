"""Checks for server-sent event streams (framing, [DONE], chunk consistency, stream/non-stream equivalence)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance.checks.common import clip
from conformance.results import CheckFailure


def content_type_is_sse(req: str, stream: Any) -> None:
    """Clients (the SDKs, browsers' EventSource) only parse a 200 text/event-stream response as a stream."""
    if stream.status != 200:
        raise CheckFailure(req, f"streaming request got HTTP {stream.status}: {clip(stream.error_body or stream.text)}",
                           observed=stream.status, expected=200)
    media = (stream.content_type or "").split(";")[0].strip().lower()
    if media != "text/event-stream":
        raise CheckFailure(req, f"Content-Type is {stream.content_type!r}; expected text/event-stream",
                           observed=stream.content_type, expected="text/event-stream")


def framing_clean(req: str, stream: Any) -> None:
    """Each event is one 'data: <json>' line followed by a blank line; merged or broken events lose chunks."""
    if stream.framing_errors:
        raise CheckFailure(
            req, f"{len(stream.framing_errors)} SSE framing problem(s): {'; '.join(stream.framing_errors[:3])}",
            observed=stream.framing_errors[:10], expected="data: lines separated by blank lines",
        )
    if not stream.chunks:
        raise CheckFailure(req, "the stream carried no JSON chunk at all", observed=stream.events[:5],
                           expected="at least one data: {...} event")


def ends_with_done(req: str, stream: Any) -> None:
    """The SDKs stop reading at 'data: [DONE]'; without it they hang or raise, after it nothing may follow."""
    if not stream.done:
        raise CheckFailure(req, f"the stream ended without 'data: [DONE]' after {len(stream.chunks)} chunk(s)",
                           observed=(stream.events or [])[-3:], expected="data: [DONE]")
    if stream.after_done:
        raise CheckFailure(req, f"data after [DONE]: {clip(stream.after_done[:3])}",
                           observed=stream.after_done[:5], expected="nothing after [DONE]")


def consistent_ids(req: str, chunks: Sequence[dict[str, Any]]) -> None:
    """Every chunk of one stream carries the same id and created (clients key the response on them)."""
    for key in ("id", "created"):
        values = [c.get(key) for c in chunks if isinstance(c, dict)]
        distinct = list(dict.fromkeys(repr(v) for v in values))
        if len(distinct) > 1:
            raise CheckFailure(req, f"chunks carry {len(distinct)} different {key} values: {', '.join(distinct[:4])}",
                               observed=distinct[:10], expected=f"one {key} for the whole stream")
        if values and values[0] in (None, ""):
            raise CheckFailure(req, f"chunks carry no {key}", observed=values[:3], expected=f"a {key}")


def chunk_objects(req: str, chunks: Sequence[dict[str, Any]], expected: str) -> None:
    """object is 'chat.completion.chunk' for chat streams and 'text_completion' for completions streams."""
    wrong = [(i, c.get("object")) for i, c in enumerate(chunks) if c.get("object") != expected]
    if wrong:
        raise CheckFailure(req, f"chunk {wrong[0][0]} has object {wrong[0][1]!r}; expected {expected!r} "
                           f"({len(wrong)} of {len(chunks)} chunks wrong)", observed=wrong[:5], expected=expected)


def _choices(chunk: Any) -> list[dict[str, Any]]:
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def one_finish_reason_per_choice(req: str, chunks: Sequence[dict[str, Any]], n: int = 1) -> None:
    """Each choice index 0..n-1 gets exactly one non-null finish_reason, and nothing for it comes after it."""
    seen: dict[int, int] = {}
    for pos, chunk in enumerate(chunks):
        for choice in _choices(chunk):
            index = choice.get("index")
            if not isinstance(index, int):
                continue
            if index in seen:
                raise CheckFailure(
                    req, f"choice {index} continues in chunk {pos} after its finish_reason in chunk {seen[index]} "
                    f"(chunk {pos}: {clip(choice)})", observed=choice, expected="no chunk for a finished choice")
            if choice.get("finish_reason") is not None:
                seen[index] = pos
    missing = [i for i in range(n) if i not in seen]
    if missing:
        raise CheckFailure(req, f"choice index(es) {missing} never received a non-null finish_reason",
                           observed=sorted(seen), expected=list(range(n)))


def chat_role_first(req: str, chunks: Sequence[dict[str, Any]]) -> None:
    """The first delta of each choice says role 'assistant' (the SDKs build the message from it)."""
    first: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in _choices(chunk):
            index = choice.get("index")
            delta: dict[str, Any] = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
            if isinstance(index, int) and index not in first:
                first[index] = delta
            elif isinstance(index, int) and delta.get("role") not in (None, "assistant"):
                raise CheckFailure(req, f"a later delta of choice {index} changes role to {delta.get('role')!r}",
                                   observed=delta, expected="no role, or 'assistant'")
    if not first:
        raise CheckFailure(req, "no chat delta in the stream", observed=list(chunks)[:3], expected="deltas")
    for index, delta in sorted(first.items()):
        if delta.get("role") != "assistant":
            raise CheckFailure(req, f"first delta of choice {index} is {clip(delta)}; expected role 'assistant'",
                               observed=delta, expected={"role": "assistant"})


def same_as_non_stream(req: str, streamed: str, streamed_finish: Any, text: str, finish: Any) -> None:
    """Concatenated deltas and the final finish_reason equal the non-streamed greedy response."""
    if streamed != text:
        raise CheckFailure(req, f"streamed text {clip(streamed)} differs from the non-streamed text {clip(text)}",
                           observed=streamed, expected=text)
    if streamed_finish != finish:
        raise CheckFailure(req, f"streamed finish_reason {streamed_finish!r} differs from non-streamed {finish!r}",
                           observed=streamed_finish, expected=finish)


def error_not_stream(req: str, stream: Any) -> None:
    """A request rejected by validation is a 4xx JSON error, not a 200 event stream carrying an error event."""
    if stream.status == 200:
        raise CheckFailure(req, f"invalid streaming request got HTTP 200 ({stream.content_type!r}) with "
                           f"{len(stream.chunks)} chunk(s): {clip(stream.chunks[:2])}",
                           observed=200, expected="HTTP 4xx")
    if not 400 <= stream.status < 500:
        raise CheckFailure(req, f"invalid streaming request got HTTP {stream.status}; expected 4xx",
                           observed=stream.status, expected="4xx")
