"""Padding-invariant attention for batched decode steps.

In a batch whose rows hold different numbers of keys, a row's attention normally reduces over the
batch's longest key range with a mask, so the summation order (SIMD lanes, blocking) changes with
whatever else is in the batch and the result differs in the last bits. That is enough to flip a
near-tie argmax, so greedy output would depend on batch composition. During decode steps the
engine publishes, for each row of the batch, how many keys it holds (keys at `[0, length)`, see
`kv_slots.py`) and the end of its length *bucket* (`bucket_end`: a function of the length alone).
This attention function runs one SDPA call per bucket, each row over the keys `[0, bucket end)`
with a mask that hides those at or after its length. So a row's reduction always runs over the
same key range with the same mask whatever else is in the batch, which is what the same sequence
computes alone, while rows of similar lengths share one call (with exact lengths, 32 streams of
distinct lengths meant 32 calls per layer). Masked keys contribute exact zeros, so stale values in
a slot never matter. A row whose entry is None is an inert filler (its output is never read): it
is not attended at all and its output is zeros.

Outside decode steps (prefill, prompt logprobs, anybody else using the model) it defers to the
stock SDPA implementation, so registering it changes nothing for other callers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

ATTN_NAME = "engine_padding_invariant"

_ctx = threading.local()


_BUCKET_MIN = 64


def bucket_end(length: int, limit: int) -> int:
    """The end of `length`'s key bucket, never past `limit` (the context): a multiple of 64 (at most
    63 masked keys), or for long rows of an eighth of the power of two below `length` (at most a
    quarter of the length masked)."""
    step = max(_BUCKET_MIN, 1 << max(length.bit_length() - 3, 0))
    return min(-(-length // step) * step, limit)


class _Bucket:
    """One SDPA call of a decode step: its rows (a slice when contiguous), key range and mask."""

    def __init__(self, end: int, rows: list[int], lengths: list[int], device: torch.device) -> None:
        self.end = end
        first, last = rows[0], rows[-1]
        self.idx: torch.Tensor | slice = (
            slice(first, last + 1) if last - first + 1 == len(rows) else torch.tensor(rows, device=device)
        )
        keys = torch.tensor(lengths, device=device)
        self.mask = (torch.arange(end, device=device)[None, :] < keys[:, None])[:, None, None, :]


class _Plan:
    """The buckets of one decode step, built on its first layer and reused by the others."""

    def __init__(self, spans: list[tuple[int, int] | None], device: torch.device) -> None:
        by_end: dict[int, list[int]] = {}
        for row, span in enumerate(spans):
            if span is not None:
                by_end.setdefault(span[1], []).append(row)
        self.skipped = len(spans) != sum(len(rows) for rows in by_end.values())
        self.buckets = [
            _Bucket(end, rows, [spans[r][0] for r in rows], device)  # type: ignore[index]
            for end, rows in by_end.items()
        ]


@contextmanager
def decode_rows(rows: list[tuple[int, int] | None]) -> Iterator[None]:
    """Within this block, attention on this thread gives row b the keys `[:rows[b][0]]`, computed
    over `[:rows[b][1]]` with the rest masked (None: skip the row)."""
    _ctx.rows = rows
    _ctx.plan = None
    try:
        yield
    finally:
        _ctx.rows = None
        _ctx.plan = None


def _padding_invariant_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    spans: list[tuple[int, int] | None] | None = getattr(_ctx, "rows", None)
    if spans is None or query.shape[2] != 1 or query.shape[0] != len(spans):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    plan: _Plan | None = getattr(_ctx, "plan", None)
    if plan is None:
        plan = _ctx.plan = _Plan(spans, query.device)
    groups = getattr(module, "num_key_value_groups", 1)
    shape = (query.shape[0], query.shape[1], 1, value.shape[-1])
    out = query.new_zeros(shape) if plan.skipped else query.new_empty(shape)
    for bucket in plan.buckets:
        idx, end = bucket.idx, bucket.end
        if isinstance(idx, slice):
            q, k, v = query[idx], key[idx, :, :end], value[idx, :, :end]
        else:
            q = query.index_select(0, idx)
            k = key[:, :, :end].index_select(0, idx)
            v = value[:, :, :end].index_select(0, idx)
        if groups > 1:
            k = _repeat_kv(k, groups)
            v = _repeat_kv(v, groups)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bucket.mask, scale=scaling)
        if isinstance(idx, slice):
            out[idx] = o
        else:
            out.index_copy_(0, idx, o)
    return out.transpose(1, 2).contiguous(), None


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, h, t, d = x.shape
    return x[:, :, None].expand(b, h, groups, t, d).reshape(b, h * groups, t, d)


_registered = False


def enable_padding_invariant_attention(model: torch.nn.Module) -> bool:
    """Switch `model` to the padding-invariant attention. False if this transformers/model cannot."""
    global _registered
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

        if not _registered:
            AttentionInterface.register(ATTN_NAME, _padding_invariant_attention)
            ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN_NAME, sdpa_mask)
            _registered = True
        config = getattr(model, "config", None)
        if config is None or getattr(config, "_attn_implementation", None) not in (
            "sdpa",
            "eager",
            ATTN_NAME,
        ):
            return False
        if getattr(config, "attn_logit_softcapping", None) or getattr(config, "use_sliding_window", False):
            return False
        model.set_attn_implementation(ATTN_NAME)  # type: ignore[operator]
        return bool(config._attn_implementation == ATTN_NAME)
    except Exception:  # noqa: BLE001 - older transformers, exotic models: fall back to the stock attention
        return False
