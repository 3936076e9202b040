"""CUDA graphs of the engine's decode step, one per (rows, keys) bucket.

On a GPU a decode step of a ~1B model reads under 2 GB of weights, well under a millisecond, but
launches several hundred kernels one by one from Python: launch overhead, not bandwidth, sets the
pace at small batches. A captured CUDA graph replays all of a step's kernels with one launch.

A graph fixes its shapes and the addresses it reads and writes, so:

- inputs (each row's next token and position) go through one static device buffer, written
  before each replay;
- a step runs over `rows_bucket(width)` slot rows (extra rows are inert fillers: free slots writing
  at position 0 of their own slot) and `keys_bucket(visible)` key positions (masked per row past its
  length), so a handful of graphs serves every batch;
- the engine captures every bucket its buffers allow at start-up (`capture_all`); a bucket met later
  (the buffers grew) is captured the first time it is met; all are dropped when the key/value slots
  are reallocated (they grow by doubling, so that happens a few times per process at most).

The graph also takes the greedy choice of every row (argmax, and its log-probability under
log_softmax, the same operations the engine's sampler runs) into `last_head`, so a batch of greedy
requests without logit processing costs one small copy to the host per step instead of several
launches and copies.

Capturing runs the step once eagerly first (lazy initialisation, compilation of `torch.compile`d
pieces), with the step's real inputs; a replay with the same inputs writes the same keys, so the
step is simply computed again. The runner takes its capture function as a parameter so that the
bucket and buffer logic runs, and is tested, on CPU too (`eager_capture`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from .kv_slots import KVSlots, SlotStep

log = logging.getLogger(__name__)

Step = Callable[[], torch.Tensor]
Capture = Callable[[Step], Step]

_SMALL_ROWS = (1, 2, 4, 8)
_ROW_STEP = 8
_MIN_KEYS = 64
_KEY_STEP = 512


def rows_bucket(rows: int) -> int:
    """Graph batch sizes: 1, 2, 4, 8, then multiples of 8."""
    for size in _SMALL_ROWS:
        if rows <= size:
            return size
    return -(-rows // _ROW_STEP) * _ROW_STEP


def keys_bucket(visible: int, limit: int) -> int:
    """Key range of a step: 64, 128, 256, 512, then multiples of 512; never past `limit`."""
    size = _MIN_KEYS
    while size < visible and size < _KEY_STEP:
        size *= 2
    if size < visible:
        size = -(-visible // _KEY_STEP) * _KEY_STEP
    return min(size, limit)


def eager_capture(step: Step) -> Step:
    """A stand-in for CUDA graph capture: run the step again on every replay (CPU, tests)."""
    return step


class CudaGraphCapture:
    """Capture with `torch.cuda.CUDAGraph`, all graphs sharing one memory pool."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pool = torch.cuda.graph_pool_handle()
        self.stream = torch.cuda.Stream(device)

    def __call__(self, step: Step) -> Step:
        # Warm up on a side stream, as torch.cuda.graph requires (cuBLAS workspaces, compilation).
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            step()
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the event loop's thread may touch the device meanwhile (a sampler's tensors).
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            out = step()

        def replay() -> torch.Tensor:
            graph.replay()
            return out

        return replay


class DecodeGraphs:
    """Decode steps over the engine's slot cache through captured graphs.

    `decoder(input_ids [rows, 1], position_ids [rows, 1], cache, mask [rows, 1, 1, keys])` is the
    step (the fast decoder); `cache` the slot cache whose `step` the runner sets.
    """

    def __init__(
        self,
        decoder: Callable[..., torch.Tensor],
        slots: KVSlots,
        cache: Any,
        device: torch.device,
        max_rows: int,
        capture: Capture,
        mask_dtype: torch.dtype | None = None,
    ) -> None:
        """`mask_dtype`: build the step's attention mask once, additive in this dtype (the model's), instead
        of a boolean one that attention converts again in every layer; None keeps it boolean."""
        self.decoder = decoder
        self.slots = slots
        self.cache = cache
        self.device = device
        self.max_rows = max_rows
        self.capture = capture
        self.captures = 0  # graphs captured so far (all generations)
        self._inputs = torch.zeros((2, max_rows), dtype=torch.long, device=device)
        self._arange = torch.arange(slots.context_length, device=device)
        self._mask_values = (
            None
            if mask_dtype is None
            else (torch.zeros((), dtype=mask_dtype, device=device), torch.full((), -torch.inf, dtype=mask_dtype, device=device))
        )
        self._graphs: dict[tuple[int, int], Step] = {}
        self._heads: dict[tuple[int, int], list[torch.Tensor]] = {}
        self._generation = -1
        # [rows, 2] float32 of the last step: each row's argmax token id (exact below 2**24) and its logprob.
        self.last_head: torch.Tensor | None = None

    def rows_for(self, width: int) -> int:
        return min(rows_bucket(width), self.max_rows)

    def keys_for(self, visible: int) -> int:
        return keys_bucket(visible, self.slots.context_length)

    def __call__(self, tokens: list[int], positions: list[int], keys: int) -> torch.Tensor:
        """float32 logits [len(tokens), vocab] of one step; `len(tokens)` rows, `keys` a keys bucket."""
        rows = len(tokens)
        if rows > self.max_rows or keys > self.slots.capacity:
            raise ValueError(f"decode graph: {rows} rows / {keys} keys exceed {self.max_rows} / {self.slots.capacity}")
        self._check_generation()
        staged = torch.tensor([tokens, positions], dtype=torch.long)
        self._inputs[:, :rows].copy_(staged, non_blocking=True)
        key = (rows, keys)
        if key not in self._graphs:
            self._capture(rows, keys)
            log.debug("captured a decode graph for %d rows x %d keys", rows, keys)
        logits = self._graphs[key]()
        self.last_head = self._heads[key][0]
        return logits

    def _check_generation(self) -> None:
        if self.slots.generation != self._generation:  # buffers reallocated: every graph is stale
            self._graphs.clear()
            self._heads.clear()
            self._generation = self.slots.generation

    def _capture(self, rows: int, keys: int) -> None:
        head: list[torch.Tensor] = []
        self._graphs[(rows, keys)] = self.capture(self._step(rows, keys, head))
        self._heads[(rows, keys)] = head
        self.captures += 1

    def capture_all(self) -> int:
        """Capture every bucket the current buffers allow (rows up to `max_rows`, keys up to their
        capacity), so that no request pays for a capture; returns how many graphs exist."""
        self._check_generation()
        rows = sorted({self.rows_for(n) for n in range(1, self.max_rows + 1)})
        keys = sorted({self.keys_for(n) for n in range(1, self.slots.capacity + 1)})
        keys = [k for k in keys if k <= self.slots.capacity]
        for k in keys:
            for r in rows:
                if (r, k) not in self._graphs:
                    self._capture(r, k)
        return len(self._graphs)

    def _step(self, rows: int, keys: int, head: list[torch.Tensor]) -> Step:
        """The step to capture; each run leaves its greedy head in `head[0]` (a graph's: its captured run's)."""
        input_ids = self._inputs[0, :rows, None]
        positions = self._inputs[1, :rows]
        arange = self._arange[:keys]

        def step() -> torch.Tensor:
            self.cache.step = SlotStep(rows, positions, keys)
            mask = (arange[None, :] <= positions[:, None])[:, None, None, :]
            if self._mask_values is not None:
                mask = torch.where(mask, *self._mask_values)
            logits = self.decoder(input_ids, positions[:, None], self.cache, mask)
            tokens = logits.argmax(dim=-1)
            logprobs = torch.log_softmax(logits, dim=-1).gather(1, tokens[:, None])[:, 0]
            head[:] = [torch.stack([tokens.to(torch.float32), logprobs], dim=1)]
            return logits

        return step


__all__ = ["CudaGraphCapture", "DecodeGraphs", "eager_capture", "keys_bucket", "rows_bucket"]
