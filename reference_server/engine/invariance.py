"""The decode batch widths at which this machine's matrix kernels are batch-invariant.

A BLAS library picks its GEMM kernel by the number of rows: on CPU, one to three rows typically take
a matrix-vector path whose summation order differs from the blocked kernel used for more rows, so
a row's result can differ in the last bits with the batch around it. Padding every decode batch
to a multiple of some width `m` (with inert filler rows) avoids the widths that differ. The
smallest safe `m` depends on the CPU, the BLAS build, the thread count and the model's shapes, so
the engine measures it once, on the worker thread, with the model's own weight matrices: `m` is
safe when every row of every multiple-of-`m` batch equals that row computed in the widest batch.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

CANDIDATES = (1, 2, 4, 8)


def _linear_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    seen: set[tuple[tuple[int, ...], torch.dtype, str]] = set()
    weights: list[torch.Tensor] = []
    for module in model.modules():
        w = getattr(module, "weight", None)
        if not isinstance(module, torch.nn.Linear) or not isinstance(w, torch.Tensor) or w.dim() != 2:
            continue
        key = (tuple(w.shape), w.dtype, str(w.device))
        if key not in seen:
            seen.add(key)
            weights.append(w)
    return weights


def _invariant_at(weight: torch.Tensor, m: int, rows: int, x: torch.Tensor) -> bool:
    full = torch.nn.functional.linear(x, weight)
    return all(torch.equal(torch.nn.functional.linear(x[:n], weight), full[:n]) for n in range(m, rows, m))


def measure_row_multiple(model: torch.nn.Module, rows: int, candidates: tuple[int, ...] = CANDIDATES) -> int:
    """Smallest candidate width whose multiples give bit-identical rows (the largest if none does)."""
    weights = _linear_weights(model)
    generator = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn((rows, 1, w.shape[1]), generator=generator).to(device=w.device, dtype=w.dtype) for w in weights
    ]
    with torch.inference_mode():
        for m in candidates:
            if all(_invariant_at(w, m, rows, x) for w, x in zip(weights, inputs, strict=True)):
                return m
    log.warning("no decode width in %s is batch-invariant here; padding to %d rows", candidates, candidates[-1])
    return candidates[-1]


__all__ = ["CANDIDATES", "measure_row_multiple"]
