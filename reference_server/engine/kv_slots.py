"""Preallocated per-sequence key/value slots for batched decode steps.

Every running sequence owns one row ("slot") of per-layer buffers shaped
`[slots, kv_heads, capacity, head_dim]`; its keys sit at positions `[0, length)`, left-aligned, so a
token's cache position is its position id. A decode step writes each row's new key and value in
place at that row's length. Sequences joining, leaving and growing therefore never copy the rest of
the batch: the previous design rebuilt a left-padded cache by concatenation on every join and grew
it by concatenation on every step, which was 45% of the engine's time at 32 streams on CPU.

The buffers grow along the sequence axis (doubling, capped at the context window) when a row needs
more room, and are zero-filled so that masked positions never hold NaN.
"""

from __future__ import annotations

from typing import Any

import torch

_KV = list[tuple[torch.Tensor, torch.Tensor]]
_MIN_CAPACITY = 64


def _dynamic_cache_base() -> type:
    from transformers import DynamicCache

    return DynamicCache


class KVSlots:
    """Per-layer key/value buffers for `slots` sequences; allocated on the first `store`."""

    def __init__(self, slots: int, context_length: int, min_capacity: int = _MIN_CAPACITY) -> None:
        self.slots = slots
        self.context_length = context_length
        self.min_capacity = max(1, min(min_capacity, context_length))
        self.layers: _KV = []
        self.capacity = 0
        self.generation = 0  # bumped whenever the buffers are replaced (captured graphs hold their addresses)

    @property
    def allocated(self) -> bool:
        return bool(self.layers)

    def _allocate(self, template: _KV, capacity: int) -> None:
        self.layers = [
            (
                k.new_zeros((self.slots, k.shape[1], capacity, k.shape[3])),
                v.new_zeros((self.slots, v.shape[1], capacity, v.shape[3])),
            )
            for k, v in template
        ]
        self.capacity = capacity
        self.generation += 1

    def ensure_capacity(self, needed: int) -> None:
        """Room for `needed` positions per slot (grows by doubling, never beyond the context window)."""
        if needed <= self.capacity:
            return
        new = max(self.min_capacity, self.capacity)
        while new < needed:
            new *= 2
        new = max(needed, min(new, self.context_length))
        old, old_cap = self.layers, self.capacity
        self._allocate(old, new)
        for (k, v), (ok, ov) in zip(self.layers, old, strict=True):
            k[:, :, :old_cap].copy_(ok)
            v[:, :, :old_cap].copy_(ov)

    def store(self, slot: int, kv: _KV) -> None:
        """Copy one prefilled sequence's cache (`[1, heads, length, dim]` per layer) into `slot`."""
        length = kv[0][0].shape[-2]
        if not self.allocated:
            self._allocate(kv, self.min_capacity)
        self.ensure_capacity(length + 1)
        for (k, v), (pk, pv) in zip(self.layers, kv, strict=True):
            k[slot, :, :length].copy_(pk[0])
            v[slot, :, :length].copy_(pv[0])

    def move(self, src: int, dst: int, length: int) -> None:
        for k, v in self.layers:
            k[dst, :, :length].copy_(k[src, :, :length])
            v[dst, :, :length].copy_(v[src, :, :length])

    def release(self) -> None:
        self.layers, self.capacity = [], 0
        self.generation += 1


class SlotStep:
    """What one decode step writes: rows `[0, width)`, each at its own position, `visible` keys read."""

    def __init__(self, width: int, positions: torch.Tensor, visible: int) -> None:
        self.width = width
        self.rows = torch.arange(width, device=positions.device)
        self.positions = positions
        self.visible = visible


def make_slot_cache(slots: KVSlots) -> Any:
    """A transformers `Cache` whose `update` writes into `slots` for the step set on it."""

    class SlotCache(_dynamic_cache_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.step: SlotStep | None = None

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            step = self.step
            assert step is not None and key_states.shape[2] == 1, "slot cache: decode steps only"
            k, v = slots.layers[layer_idx]
            k[step.rows, :, step.positions] = key_states[:, :, 0]
            v[step.rows, :, step.positions] = value_states[:, :, 0]
            return k[: step.width, :, : step.visible], v[: step.width, :, : step.visible]

        def get_seq_length(self, layer_idx: int | None = 0) -> int:
            return self.step.visible - 1 if self.step is not None else 0

        def get_mask_sizes(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
            return (self.step.visible if self.step is not None else 1), 0

        @property
        def is_compileable(self) -> bool:
            return False

    return SlotCache()


__all__ = ["KVSlots", "SlotStep", "make_slot_cache"]
