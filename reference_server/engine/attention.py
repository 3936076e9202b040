"""Padding-invariant attention for batched decode steps.

In a batch whose rows hold different numbers of keys, a row's attention normally reduces over the
batch's longest key range with a mask, so the summation order (SIMD lanes, blocking) changes with
whatever else is in the batch and the result differs in the last bits. That is enough to flip a
near-tie argmax, so greedy output would depend on batch composition. During decode steps the
engine publishes, for each row of the batch, how many keys it holds (`lengths`, keys at
`[0, length)`, see `kv_slots.py`); this attention function then attends each group of rows that
share a length over exactly their keys, which is what the same sequence computes alone. A row
whose length is None is an inert filler (its output is never read): it is not attended at all and
its output is zeros, which changes nothing for the other rows since attention is per row.

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


@contextmanager
def decode_rows(lengths: list[int | None]) -> Iterator[None]:
    """Within this block, attention on this thread uses per-row key ranges `[:lengths[b]]` (None: skip the row)."""
    _ctx.lengths = lengths
    try:
        yield
    finally:
        _ctx.lengths = None


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

    lengths: list[int | None] | None = getattr(_ctx, "lengths", None)
    if lengths is None or query.shape[2] != 1 or query.shape[0] != len(lengths):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    groups = getattr(module, "num_key_value_groups", 1)
    # Rows sharing a length form one SDPA call; single rows and contiguous runs are sliced as views.
    by_length: dict[int, list[int]] = {}
    skipped = False
    for row, length in enumerate(lengths):
        if length is None:
            skipped = True
        else:
            by_length.setdefault(length, []).append(row)
    shape = (query.shape[0], query.shape[1], 1, value.shape[-1])
    out = query.new_zeros(shape) if skipped else query.new_empty(shape)
    for length, rows in by_length.items():
        first, last = rows[0], rows[-1]
        idx: torch.Tensor | slice
        if last - first + 1 == len(rows):
            idx = slice(first, last + 1)
            q, k, v = query[idx], key[idx, :, :length], value[idx, :, :length]
        else:
            idx = torch.tensor(rows, device=query.device)
            q = query.index_select(0, idx)
            k = key[:, :, :length].index_select(0, idx)
            v = value[:, :, :length].index_select(0, idx)
        if groups > 1:
            k = _repeat_kv(k, groups)
            v = _repeat_kv(v, groups)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scaling)
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
