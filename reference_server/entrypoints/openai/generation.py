"""One choice's generation: engine token events -> released text, with stops and detokenization.

The same `ChoiceProcessor` drives streamed and non-streamed requests, so the concatenated stream
text is the non-stream text by construction. Text is released only when it can no longer become
part of a stop sequence; tokens (for logprobs) are released with the text they contribute to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from reference_server.engine.types import Engine, SamplingParams, TokenEvent

from .detokenize import IncrementalDetokenizer
from .stops import StopMatcher


@dataclass
class TokenRecord:
    token_id: int
    logprob: float
    top_logprobs: list[tuple[int, float]]
    start: int  # offset of this token's text in the generated text
    end: int


@dataclass
class Piece:
    """Released output of one choice: new text, the tokens it came from, and maybe the finish."""

    index: int
    text: str
    tokens: list[TokenRecord] = field(default_factory=list)
    finish_reason: str | None = None


class ChoiceProcessor:
    def __init__(
        self,
        index: int,
        tokenizer: Any,
        prompt_ids: list[int],
        stops: StopMatcher,
        include_stop: bool,
        eos_token_ids: frozenset[int],
    ) -> None:
        self.index = index
        self.detok = IncrementalDetokenizer(tokenizer, prompt_ids)
        self.stops = stops
        self.include_stop = include_stop
        self.eos_token_ids = eos_token_ids
        self.text = ""  # generated text so far (before any stop cut)
        self.released = 0  # characters of text already released
        self.pending: list[TokenRecord] = []
        self.completion_tokens = 0
        self.cumulative_logprob = 0.0
        self.finish_reason: str | None = None
        self.final_text: str | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def _release(self, upto: int, final: bool) -> Piece:
        text = self.text[self.released : upto]
        self.released = max(self.released, upto)
        tokens: list[TokenRecord] = []
        while self.pending and (self.pending[0].start < upto or self.pending[0].end <= upto):
            tokens.append(self.pending.pop(0))
        if final:
            self.pending.clear()
        return Piece(self.index, text, tokens, self.finish_reason)

    def feed(self, event: TokenEvent) -> Piece:
        """Process one engine event; the piece released by it (possibly empty)."""
        assert not self.finished, "feed() after finish"
        self.completion_tokens += 1
        self.cumulative_logprob += float(event.logprob)
        searched = len(self.text)
        is_eos = event.finish_reason == "stop" and event.token_id in self.eos_token_ids
        if not is_eos:
            start = len(self.text)
            self.text += self.detok.step(event.token_id)
            self.pending.append(
                TokenRecord(event.token_id, float(event.logprob), list(event.top_logprobs), start, len(self.text))
            )
        if event.finish_reason is not None:
            rest = self.detok.flush()
            if rest:
                self.text += rest
                if self.pending:
                    self.pending[-1].end = len(self.text)
        match = self.stops.find(self.text, searched) if self.stops else None
        if match is not None:
            self.finish_reason = "stop"
            cut = match.end if self.include_stop else match.start
            self.final_text = self.text[:cut]
            return self._release(cut, final=True)
        if event.finish_reason is not None:
            self.finish_reason = event.finish_reason
            self.final_text = self.text
            return self._release(len(self.text), final=True)
        safe = len(self.text) - (self.stops.holdback(self.text) if self.stops else 0)
        return self._release(max(safe, self.released), final=False)


async def run_choice(iterator: AsyncIterator[TokenEvent], processor: ChoiceProcessor) -> AsyncIterator[Piece]:
    """Feed the engine's events to `processor`, yielding non-empty pieces; closes the iterator."""
    try:
        async for event in iterator:
            piece = processor.feed(event)
            if piece.text or piece.tokens or piece.finish_reason is not None:
                yield piece
            if processor.finished:
                break
        if not processor.finished:  # the engine ended without a finish event
            processor.finish_reason = "length"
            processor.final_text = processor.text
            yield processor._release(len(processor.text), final=True)
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass
class ChoiceJob:
    """What one choice needs: its prompt, sampling parameters and text processor."""

    index: int
    prompt_ids: list[int]
    params: SamplingParams
    processor: ChoiceProcessor
    prompt_index: int = 0
    iterator: AsyncIterator[TokenEvent] | None = None


def start_jobs(engine: Engine, jobs: list[ChoiceJob]) -> None:
    """Submit every job to the engine, all or none: raises (e.g. EngineOverloaded) after cancelling."""
    try:
        for job in jobs:
            job.iterator = engine.generate(job.prompt_ids, job.params)
    except BaseException:
        close_jobs_nowait(jobs)
        raise


def close_jobs_nowait(jobs: list[ChoiceJob]) -> None:
    for job in jobs:
        it, job.iterator = job.iterator, None
        if it is not None:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                coro = aclose()
                try:
                    coro.send(None)
                except StopIteration:
                    pass
                except BaseException:
                    coro.close()
                    asyncio.ensure_future(aclose())  # an iterator whose close must really await


async def collect(job: ChoiceJob) -> list[Piece]:
    assert job.iterator is not None
    return [piece async for piece in run_choice(job.iterator, job.processor)]


async def collect_all(jobs: list[ChoiceJob]) -> list[list[Piece]]:
    """Run every job to completion concurrently; on error or cancellation, close them all."""
    tasks = [asyncio.ensure_future(collect(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        close_jobs_nowait(jobs)


async def merge_pieces(jobs: list[ChoiceJob]) -> AsyncIterator[Piece | BaseException]:
    """Pieces of every job as they come (an engine error arrives as the exception, once)."""
    queue: asyncio.Queue[Piece | BaseException | None] = asyncio.Queue()

    async def pump(job: ChoiceJob) -> None:
        assert job.iterator is not None
        try:
            async for piece in run_choice(job.iterator, job.processor):
                queue.put_nowait(piece)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            queue.put_nowait(exc)
        finally:
            queue.put_nowait(None)

    tasks = [asyncio.ensure_future(pump(job)) for job in jobs]
    remaining = len(tasks)
    try:
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
                continue
            yield item
            if isinstance(item, BaseException):
                return
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        close_jobs_nowait(jobs)
