"""Checks for /models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance.checks.common import clip
from conformance.results import CheckFailure

CONTEXT_KEYS: Sequence[str] = (
    "context_length", "max_model_len", "context_window", "max_context_length", "max_sequence_length",
    "max_position_embeddings", "n_ctx", "context_size",
)


def lists_model(req: str, body: Any, model: str) -> None:
    """GET /models lists the model the suite is testing (clients pick models from it)."""
    data = body.get("data") if isinstance(body, dict) else None
    ids = [m.get("id") for m in data if isinstance(m, dict)] if isinstance(data, list) else []
    if model not in ids:
        raise CheckFailure(req, f"model {model!r} is not among the listed ids {clip(ids)}", observed=ids,
                           expected=f"a list containing {model!r}")


def model_object(req: str, body: Any, model: str) -> None:
    """GET /models/{id} returns that very model."""
    if not isinstance(body, dict) or body.get("id") != model or body.get("object") != "model":
        raise CheckFailure(req, f"expected the model object for {model!r}, got {clip(body)}", observed=body,
                           expected={"id": model, "object": "model"})


def context_length_reported(req: str, entry: Any) -> int:
    """A model entry states its context window under one of the customary keys. Returns it."""
    if isinstance(entry, dict):
        for key in CONTEXT_KEYS:
            value = entry.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    raise CheckFailure(req, f"the model entry states no context window (looked for {', '.join(CONTEXT_KEYS)}): "
                       f"{clip(entry)}", observed=entry, expected="a positive integer context length")
