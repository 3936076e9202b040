"""Lean prefill and decode steps for Llama-architecture models: transformers' operations, without its per-call machinery.

On a small model a decode step is mostly Python: transformers' forward goes through decorators,
output capturing, mask construction, config look-ups and ~45 module calls per step, about 1 ms on
CPU for the 3-layer built-in model whose actual arithmetic takes a fraction of that. This module
runs the same tensor operations, in the same order and with the same weights (so the same bits),
as `LlamaForCausalLM.forward` does for one decode step over the engine's slot cache: embedding,
per layer RMSNorm -> q/k/v projections -> rotary embedding -> cache write -> the model's attention
function -> o projection -> residual -> RMSNorm -> SwiGLU MLP -> residual, final norm, LM head.

It is used only for model types with that exact structure and no hooks (offloading, adapters),
and only after the engine has checked, at start-up, that it reproduces transformers' logits for a
decode step (bit for bit in batch-invariant mode); otherwise the engine calls the model itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

# Model types whose decoder layers are exactly Llama's (RMSNorm, rotary, GQA attention, SwiGLU MLP).
SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2"})


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm.forward, operation for operation."""
    dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(dtype)


def _linear_parts(module: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    return module.weight, module.bias


def unsupported_reason(model: Any) -> str | None:
    """Why the fast path cannot run `model` (None: it can, subject to the start-up check)."""
    config = getattr(model, "config", None)
    inner = getattr(model, "model", None)
    if config is None or inner is None or getattr(model, "lm_head", None) is None:
        return "not a *ForCausalLM with .model and .lm_head"
    if getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return f"model type {getattr(config, 'model_type', None)!r}"
    if getattr(config, "hidden_act", None) != "silu" or getattr(config, "pretraining_tp", 1) != 1:
        return "activation or tensor-parallel split"
    layer_types = getattr(config, "layer_types", None) or []
    if getattr(config, "use_sliding_window", False) or any(t != "full_attention" for t in layer_types):
        return "sliding-window attention"
    if config.model_type == "mistral" and getattr(config, "sliding_window", None) is not None:
        return "sliding-window attention"
    for module in model.modules():
        if module._forward_hooks or module._forward_pre_hooks or hasattr(module, "_hf_hook"):
            return "module hooks (offloading, adapters)"
    needed = ("embed_tokens", "layers", "norm", "rotary_emb")
    if not all(hasattr(inner, name) for name in needed):
        return "unexpected model layout"
    for layer in inner.layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None or not all(
            hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")
        ):
            return "unexpected attention layout"
        if not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
            return "unexpected MLP layout"
        for norm in (layer.input_layernorm, layer.post_attention_layernorm):
            if not type(norm).__name__.endswith("RMSNorm") or not hasattr(norm, "variance_epsilon"):
                return "unexpected norm"
    return None


class _Layer:
    def __init__(self, layer: Any) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.attn = attn
        self.head_dim: int = attn.head_dim
        self.scaling: float = attn.scaling
        self.ln1 = (layer.input_layernorm.weight, float(layer.input_layernorm.variance_epsilon))
        self.ln2 = (layer.post_attention_layernorm.weight, float(layer.post_attention_layernorm.variance_epsilon))
        self.q, self.k, self.v, self.o = (_linear_parts(m) for m in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj))
        self.gate, self.up, self.down = (_linear_parts(m) for m in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))


class FastDecoder:
    """One decode step (`input_ids` of shape [rows, 1]) -> float32 logits [rows, vocab]."""

    def __init__(self, model: Any) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"fast decode unsupported: {reason}")
        inner = model.model
        self.config = model.config
        self.embed = inner.embed_tokens
        self.rotary = inner.rotary_emb
        self.norm = (inner.norm.weight, float(inner.norm.variance_epsilon))
        self.lm_head = _linear_parts(model.lm_head)
        self.layers = [_Layer(layer) for layer in inner.layers[: self.config.num_hidden_layers]]
        modeling = sys.modules[type(inner.layers[0].self_attn).__module__]
        self.apply_rotary: Callable[..., tuple[torch.Tensor, torch.Tensor]] = modeling.apply_rotary_pos_emb

    def _attention_function(self) -> Callable[..., tuple[torch.Tensor, Any]]:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        return ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]

    def __call__(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, cache: Any, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Logits of the last position of each row; `cache.update` receives each layer's new keys.

        Decode steps pass one token per row; a prefill passes one row of the whole prompt with no
        mask, which the attention function (like transformers for an unpadded prompt) runs causal.
        """
        attention = self._attention_function()
        rows, length = input_ids.shape
        h = F.embedding(input_ids, self.embed.weight, self.embed.padding_idx)
        cos, sin = self.rotary(h, position_ids)
        for i, layer in enumerate(self.layers):
            residual = h
            x = _rms_norm(h, *layer.ln1)
            q = F.linear(x, *layer.q).view(rows, length, -1, layer.head_dim).transpose(1, 2)
            k = F.linear(x, *layer.k).view(rows, length, -1, layer.head_dim).transpose(1, 2)
            v = F.linear(x, *layer.v).view(rows, length, -1, layer.head_dim).transpose(1, 2)
            q, k = self.apply_rotary(q, k, cos, sin)
            k, v = cache.update(k, v, i)
            out, _ = attention(layer.attn, q, k, v, attention_mask, dropout=0.0, scaling=layer.scaling)
            out = out.reshape(rows, length, -1).contiguous()
            h = residual + F.linear(out, *layer.o)
            residual = h
            x = _rms_norm(h, *layer.ln2)
            h = residual + F.linear(F.silu(F.linear(x, *layer.gate)) * F.linear(x, *layer.up), *layer.down)
        h = _rms_norm(h, *self.norm)
        return F.linear(h[:, -1:, :], *self.lm_head)[:, -1, :].float()  # like logits_to_keep=1


class PrefillCache:
    """What a prefill's `cache.update` calls need: keep each layer's keys and values as they come."""

    def __init__(self) -> None:
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert layer_idx == len(self.layers), "layers arrive in order"
        self.layers.append((key_states, value_states))
        return key_states, value_states


__all__ = ["SUPPORTED_MODEL_TYPES", "FastDecoder", "PrefillCache", "unsupported_reason"]
