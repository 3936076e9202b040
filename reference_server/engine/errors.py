"""Errors raised by the generation engine (the HTTP layer maps them to status codes)."""

from __future__ import annotations


class EngineError(RuntimeError):
    """Base class of every engine error."""


class EngineOverloaded(EngineError):
    """Too many sequences are waiting for a batch slot; retry later (HTTP 429/503 with Retry-After).

    Raised synchronously by `generate()`, before anything is queued.
    """

    def __init__(self, message: str = "engine overloaded", *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineStopped(EngineError):
    """The engine is not running (never started, or stopped while the sequence was queued or running)."""


class EngineFailure(EngineError):
    """A forward pass failed (e.g. out of memory); the sequences in that pass are ended with this error."""
