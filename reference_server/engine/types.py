"""The contract between the HTTP layer (text, profiles, OpenAI semantics) and the engine (tokens).

The engine knows nothing about stop strings, profiles or JSON: it turns prompt token ids
into a stream of sampled tokens, batching all live sequences into shared forward passes.
The serving layer detokenizes, applies stop strings and cancels a sequence by closing
its iterator (`aclose()`), which frees the slot at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0  # 0 => greedy (argmax)
    top_p: float = 1.0
    top_k: int = 0  # 0 => disabled
    seed: int | None = None  # same seed => same tokens, whatever else is in the batch
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> bias in [-100, 100]
    top_logprobs: int = 0  # number of alternatives to report per sampled token (0 = none)
    ignore_eos: bool = False


@dataclass(frozen=True)
class TokenEvent:
    token_id: int
    logprob: float  # log-probability of the sampled token under the (processed) distribution
    top_logprobs: list[tuple[int, float]]  # up to SamplingParams.top_logprobs, most likely first
    finish_reason: (
        Literal["stop", "length"] | None
    )  # "stop" = EOS sampled (EOS itself is not yielded as text)


@dataclass(frozen=True)
class PromptLogprob:
    token_id: int
    logprob: float | None  # None for the first prompt token
    top_logprobs: list[tuple[int, float]]


class Engine(Protocol):
    context_length: int  # model's context window in tokens (prompt + completion)
    model_name: str
    device: str  # "cpu", "cuda:0"
    dtype: str  # "float32", "bfloat16"

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[TokenEvent]:
        """Stream sampled tokens; the last event has finish_reason set. Close the iterator to cancel."""
        ...

    async def prompt_logprobs(self, prompt_ids: list[int], top_logprobs: int) -> list[PromptLogprob]:
        """Log-probabilities of each prompt token given its prefix (for echo + logprobs)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
