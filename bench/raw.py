"""Baseline (1): raw in-process `model.generate` of the same model on the same device.

Greedy, EOS disabled (`eos_token_id=None` in the generation config, and in the model's own for the
duration: transformers fills unset fields from it), so every sequence generates exactly
`max_new_tokens` with no extra logits processor, like the server's `ignore_eos` requests. Times include
tokenization-free prefill and every decode step, as a server request's wall time does.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.stats import safe_ratio


@dataclass
class RawResult:
    label: str
    batch: int
    sequences: int
    new_tokens: int  # generated tokens, all sequences
    wall_s: float
    peak_gpu_bytes: int | None = None

    @property
    def tokens_per_s(self) -> float | None:
        return safe_ratio(float(self.new_tokens), self.wall_s)

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "batch": self.batch,
            "sequences": self.sequences,
            "new_tokens": self.new_tokens,
            "wall_s": self.wall_s,
            "tokens_per_s": self.tokens_per_s,
            "peak_gpu_bytes": self.peak_gpu_bytes,
        }

    @classmethod
    def pooled(cls, results: list[RawResult]) -> RawResult:
        """Several runs as one sample: tokens and times add up, the highest GPU peak."""
        if not results:
            raise ValueError("no raw results to pool")
        peaks = [r.peak_gpu_bytes for r in results if r.peak_gpu_bytes is not None]
        return cls(results[0].label, results[0].batch, sum(r.sequences for r in results),
                   sum(r.new_tokens for r in results), sum(r.wall_s for r in results), max(peaks) if peaks else None)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _gen_config(loaded: Any, max_new_tokens: int, **overrides: Any) -> Any:
    cfg = copy.deepcopy(loaded.model.generation_config)
    cfg.eos_token_id = None
    cfg.do_sample = False
    cfg.max_new_tokens = max_new_tokens
    cfg.min_new_tokens = None
    tok = loaded.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    cfg.pad_token_id = pad
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


@contextlib.contextmanager
def no_eos(model: Any, cfg: Any) -> Iterator[None]:
    """Make `cfg` (eos_token_id=None) the model's default generation config for the block."""
    saved = model.generation_config
    model.generation_config = copy.deepcopy(cfg)
    try:
        yield
    finally:
        model.generation_config = saved


def attn_implementation(model: Any) -> str | None:
    return getattr(getattr(model, "config", None), "_attn_implementation", None)


@contextlib.contextmanager
def stock_attention(model: Any, implementation: str | None) -> Iterator[None]:
    """Run the block with `model` on attention `implementation` (what it loaded with), then switch back.

    The engine switches the model it is given to its own padding-invariant attention (which defers
    to SDPA outside its decode steps, at the cost of a Python call per layer); raw generate sharing
    that model object in this process must measure the model as loaded.
    """
    current = attn_implementation(model)
    switch = implementation is not None and current is not None and current != implementation
    if switch:
        model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(current)


def raw_generate(
    loaded: Any,
    prompts: list[str],
    *,
    batch: int,
    max_new_tokens: int,
    label: str | None = None,
    warmup: bool = True,
    **gen_overrides: Any,
) -> RawResult:
    """Generate for every prompt, `batch` prompts per `generate` call (left-padded when batch > 1)."""
    import torch

    model, tok = loaded.model, loaded.tokenizer
    device = str(next(model.parameters()).device)
    cfg = _gen_config(loaded, max_new_tokens, **gen_overrides)
    old_side = getattr(tok, "padding_side", "right")
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    groups = [prompts[i : i + batch] for i in range(0, len(prompts), batch)]
    try:
        encoded = [tok(g, return_tensors="pt", padding=True).to(device) for g in groups]
        with torch.inference_mode(), no_eos(model, cfg):
            if warmup:
                model.generate(**encoded[0], generation_config=cfg)
                _sync(device)
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            new_tokens = 0
            for enc in encoded:
                out = model.generate(**enc, generation_config=cfg)
                new_tokens += int(out.shape[0]) * (int(out.shape[1]) - int(enc["input_ids"].shape[1]))
            _sync(device)
            wall = time.perf_counter() - t0
    finally:
        tok.padding_side = old_side
    peak = None
    if device.startswith("cuda"):
        peak = int(torch.cuda.max_memory_allocated())
    return RawResult(label or f"raw generate b={batch}", batch, len(prompts), new_tokens, wall, peak)
