"""What every engine does on the event-loop side, whichever thread or process runs the model:
the checks on a submission, and the async iterator `generate()` returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .types import SamplingParams, TokenEvent


def check_generate(prompt_ids: list[int], params: SamplingParams, context_length: int) -> list[int]:
    """The prompt as ints; ValueError for a request no engine can start."""
    prompt = [int(t) for t in prompt_ids]
    if not prompt:
        raise ValueError("prompt must contain at least one token")
    if len(prompt) >= context_length:
        raise ValueError(f"prompt of {len(prompt)} tokens leaves no room in the {context_length}-token context")
    if params.max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    return prompt


def check_prompt_logprobs(prompt_ids: list[int], context_length: int) -> list[int]:
    ids = [int(t) for t in prompt_ids]
    if len(ids) > context_length:
        raise ValueError(f"prompt of {len(ids)} tokens exceeds the {context_length}-token context")
    return ids


class TokenStream(AsyncIterator[TokenEvent]):
    """Events from a queue the engine fills; the last has finish_reason set, or an error is raised.

    Closing it, cancelling the consumer, or dropping it unclosed cancels the sequence through
    `_on_cancel` (the engine-specific part), so an abandoned stream never holds a batch slot.
    """

    def __init__(self, queue: asyncio.Queue[TokenEvent | BaseException]) -> None:
        self.queue = queue
        self._closed = False

    def _on_cancel(self) -> None:
        raise NotImplementedError

    def __aiter__(self) -> TokenStream:
        return self

    async def __anext__(self) -> TokenEvent:
        if self._closed:
            raise StopAsyncIteration
        try:
            item = await self.queue.get()
        except BaseException:  # cancelled consumer (client disconnect): free the slot
            self._cancel()
            raise
        if isinstance(item, BaseException):
            self._closed = True
            raise item
        if item.finish_reason is not None:
            self._closed = True
        return item

    async def aclose(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_cancel()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):  # an abandoned, never-closed stream
            self._cancel()


__all__ = ["TokenStream", "check_generate", "check_prompt_logprobs"]
