"""What streamed and non-streamed responses share: usage placement per profile, disconnect handling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request

from reference_server.config import ServerConfig

from .errors import APIError
from .generation import ChoiceJob, Piece, close_iterator, close_jobs_nowait, merge_pieces
from .protocol import usage_dict
from .sse import DONE, ChunkFrame, stream_error_event

T = TypeVar("T")


class ClientDisconnected(Exception):
    pass


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def run_unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and so the generation) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    if task.cancelled():
        raise ClientDisconnected()
    return task.result()


class UsagePlacement:
    """Where `usage` goes in a stream, from the profile's stream.usage axis.

    final_chunk: `usage` on every chunk, null except on the last one, which carries every
    choice's finish_reason and the usage. include_usage: only with stream_options.include_usage,
    `usage: null` on every chunk plus one last chunk with `choices: []` and the usage. none: no usage.
    """

    def __init__(self, config: ServerConfig, include_usage: bool) -> None:
        self.mode = config.axis("stream.usage")
        self.include_usage = include_usage

    @property
    def defer_finish(self) -> bool:
        return self.mode == "final_chunk"

    def field(self, chunk: dict[str, Any], usage: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.mode == "final_chunk" or (self.mode == "include_usage" and self.include_usage):
            chunk["usage"] = usage
        return chunk

    @property
    def extra_usage_chunk(self) -> bool:
        return self.mode == "include_usage" and self.include_usage


async def stream_events(
    jobs: list[ChoiceJob],
    placement: UsagePlacement,
    frame: ChunkFrame,
    make_choice: Callable[[Piece], str],
    first_choices: list[str],
    prompt_tokens: int,
) -> AsyncIterator[str]:
    """The SSE body: chunks of choices as pieces arrive, usage per the profile, then [DONE].

    `frame` serializes the fields every chunk shares; `make_choice` and `first_choices` give
    choice objects already serialized as JSON. Each non-empty piece is one chunk of one choice.
    """
    try:
        try:
            head, tail = frame.head, frame.tail
            for choice in first_choices:
                yield head + choice + tail
            deferred: dict[int, Piece] = {}
            defer = placement.defer_finish
            if len(jobs) == 1:  # the common case: no merging, no task, the engine's events directly
                job = jobs[0]
                processor = job.processor
                iterator = job.iterator
                assert iterator is not None
                try:
                    async for event in iterator:
                        piece = processor.feed(event)
                        if piece.finish_reason is not None:
                            if defer:
                                deferred[piece.index] = piece
                            else:
                                yield head + make_choice(piece) + tail
                            break
                        if piece.text or piece.tokens:
                            yield head + make_choice(piece) + tail
                    if processor.finish_reason is None:  # the engine ended without a finish event
                        piece = processor.end()
                        if defer:
                            deferred[piece.index] = piece
                        else:
                            yield head + make_choice(piece) + tail
                finally:
                    job.iterator = None
                    await close_iterator(iterator)
            else:
                merged = merge_pieces(jobs)
                try:
                    async for item in merged:
                        if isinstance(item, BaseException):
                            raise item
                        if item.finish_reason is not None and defer:
                            deferred[item.index] = item
                            continue
                        yield head + make_choice(item) + tail
                finally:
                    await merged.aclose()
            completion_tokens = sum(job.processor.completion_tokens for job in jobs)
            usage = usage_dict(prompt_tokens, completion_tokens)
            if deferred:
                yield frame.event([make_choice(deferred[i]) for i in sorted(deferred)], usage)
            if placement.extra_usage_chunk:
                yield frame.event([], usage)
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:  # after the 200 went out: an error event, then the end marker
            yield stream_error_event(exc if isinstance(exc, APIError) else exc)
        yield DONE
    finally:  # closed before or while iterating: the engine iterators too (idempotent)
        close_jobs_nowait(jobs)
