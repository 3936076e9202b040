"""One choice's generation: engine token events -> released text, with stops and detokenization.

The same `ChoiceProcessor` drives streamed and non-streamed requests, so the concatenated stream
text is the non-stream text by construction. Text is released only when it can no longer become
part of a stop sequence; tokens (for logprobs) are released with the text they contribute to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from reference_server.engine.types import Engine, SamplingParams, TokenEvent

from .detokenize import IncrementalDetokenizer
from .stops import StopMatcher


@dataclass(slots=True)
class TokenRecord:
    token_id: int
    logprob: float
    top_logprobs: list[tuple[int, float]]
    start: int  # offset of this token's text in the generated text
    end: int


@dataclass(slots=True)
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
        self.has_stops = bool(stops)
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
        pending = self.pending
        if upto == len(self.text):  # every pending token's text ends by then: all of them go
            self.pending = []
            return Piece(self.index, text, pending, self.finish_reason)
        tokens: list[TokenRecord] = []
        while pending and (pending[0].start < upto or pending[0].end <= upto):
            tokens.append(pending.pop(0))
        if final:
            pending.clear()
        return Piece(self.index, text, tokens, self.finish_reason)

    def feed(self, event: TokenEvent) -> Piece:
        """Process one engine event; the piece released by it (possibly empty)."""
        assert self.finish_reason is None, "feed() after finish"
        self.completion_tokens += 1
        logprob = float(event.logprob)
        self.cumulative_logprob += logprob
        text = self.text
        searched = len(text)
        finish = event.finish_reason
        if not (finish == "stop" and event.token_id in self.eos_token_ids):  # EOS has no text
            text += self.detok.step(event.token_id)
            self.pending.append(TokenRecord(event.token_id, logprob, list(event.top_logprobs), searched, len(text)))
        if finish is not None:
            rest = self.detok.flush()
            if rest:
                text += rest
                if self.pending:
                    self.pending[-1].end = len(text)
        self.text = text
        if not self.has_stops:
            if finish is not None:
                self.finish_reason = finish
                self.final_text = text
                return self._release(len(text), final=True)
            return self._release(len(text), final=False)
        match = self.stops.find(text, searched)
        if match is not None:
            self.finish_reason = "stop"
            cut = match.end if self.include_stop else match.start
            self.final_text = text[:cut]
            return self._release(cut, final=True)
        if finish is not None:
            self.finish_reason = finish
            self.final_text = text
            return self._release(len(text), final=True)
        safe = len(text) - self.stops.holdback(text)
        return self._release(max(safe, self.released), final=False)

    def end(self) -> Piece:
        """The engine ended the stream without a finish event: finish as "length", releasing the rest."""
        self.finish_reason = "length"
        self.final_text = self.text
        return self._release(len(self.text), final=True)


def is_empty(piece: Piece) -> bool:
    """A piece with nothing to send: no text, no tokens, not the finish."""
    return not piece.text and not piece.tokens and piece.finish_reason is None


async def close_iterator(iterator: AsyncIterator[TokenEvent]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def run_choice(iterator: AsyncIterator[TokenEvent], processor: ChoiceProcessor) -> AsyncIterator[Piece]:
    """Feed the engine's events to `processor`, yielding non-empty pieces; closes the iterator."""
    try:
        async for event in iterator:
            piece = processor.feed(event)
            if not is_empty(piece):
                yield piece
            if processor.finished:
                break
        if not processor.finished:  # the engine ended without a finish event
            yield processor.end()
    finally:
        await close_iterator(iterator)


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


async def merge_pieces(jobs: list[ChoiceJob]) -> AsyncGenerator[Piece | BaseException, None]:
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
