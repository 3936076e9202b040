"""Token-level generation engine: the contract (`types`) and a continuous-batching implementation.

`types` and `errors` import without torch; `BatchingEngine` (and `EngineMetrics`) load lazily so the
conformance suite can use the contract without the server's heavy dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import EngineError, EngineFailure, EngineOverloaded, EngineStopped
from .types import Engine, PromptLogprob, SamplingParams, TokenEvent

if TYPE_CHECKING:
    from .batching import BatchingEngine
    from .metrics import EngineMetrics

__all__ = [
    "BatchingEngine",
    "Engine",
    "EngineError",
    "EngineFailure",
    "EngineMetrics",
    "EngineOverloaded",
    "EngineStopped",
    "PromptLogprob",
    "SamplingParams",
    "TokenEvent",
]


def __getattr__(name: str) -> Any:
    if name == "BatchingEngine":
        from .batching import BatchingEngine

        return BatchingEngine
    if name == "EngineMetrics":
        from .metrics import EngineMetrics

        return EngineMetrics
    raise AttributeError(name)
