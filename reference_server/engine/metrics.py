"""A snapshot of the engine's counters, for /health and benchmarks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class EngineMetrics:
    running: int  # sequences in the decode batch now
    waiting: int  # sequences queued for a batch slot
    max_batch: int
    max_queue: int
    generated_tokens: int  # tokens sampled since start (prefill's first token included)
    prompt_tokens: int  # prompt tokens prefilled
    forward_passes: int  # prefill + decode forward passes
    prefills: int
    decode_steps: int
    average_batch_size: float  # live sequences per decode step, averaged over all decode steps
    requests_completed: int  # ended with finish_reason "stop" or "length"
    requests_cancelled: int  # closed by the consumer before finishing
    requests_failed: int  # ended with an engine error (stop(), failed forward pass)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
