"""GPU helpers: a ~1B-parameter Llama built locally with random weights, and the bandwidth limit.

`build_llama_1b(dir)` writes a LlamaForCausalLM (hidden 2048, 16 layers, 32 heads, MLP 5504,
vocab 32000, bf16, random weights) with a trivial word-level tokenizer of the same vocabulary, so
`load_model(dir)`, the reference server and `transformers serve` all load it offline.

The batch-1 decode limit: every decode step reads all weights once (the input embedding only one
row of it), so tokens/s <= copy bandwidth / weight bytes read per token. The bandwidth is measured
in the same run with a large device-to-device tensor copy (bytes read + bytes written per second).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

LLAMA_1B = {
    "hidden_size": 2048,
    "intermediate_size": 5504,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
}

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def build_tokenizer(out: Path, vocab_size: int) -> None:
    """A word-level tokenizer: ids 0-3 special, then 'w4' .. 'w{vocab-1}' (unknown words -> <unk>)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    # Common English words first, so prompts map to real ids, then filler words.
    words = ["the", "a", "an", "and", "of", "to", "in", "on", "was", "he", "she", "it", "said", "fox", "crow", "lion", "mouse", "wolf", "lamb", "dog", "river", "forest", "time", "once", "upon", "by", "met", "when", "while", "so", "which", "were", "his", "her", "they"]
    for w in words:
        vocab.setdefault(w, len(vocab))
    i = 0
    while len(vocab) < vocab_size:
        vocab.setdefault(f"w{i}", len(vocab))
        i += 1
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins tokens with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.model_max_length = LLAMA_1B["max_position_embeddings"]
    fast.save_pretrained(str(out))


def build_llama_1b(out: Path, *, dtype: str = "bfloat16", device: str = "cuda", **overrides: Any) -> Path:
    """Write the ~1B random-weight Llama to `out` (skipped when `out/config.json` exists)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out)
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    spec = {**LLAMA_1B, **overrides}
    config = LlamaConfig(**spec, bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device if device.startswith("cuda") and torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3)
    model.save_pretrained(str(out))
    build_tokenizer(out, spec["vocab_size"])
    (out / "bench_build.json").write_text(json.dumps({"spec": spec, "dtype": dtype}, indent=2))
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def weight_bytes_per_token(model: Any) -> int:
    """Bytes of weights one decode step reads: all parameters, the input embedding counted as one row."""
    total = 0
    emb = model.get_input_embeddings().weight
    out_emb = model.get_output_embeddings()
    tied = out_emb is not None and out_emb.weight.data_ptr() == emb.data_ptr()
    for p in model.parameters():
        total += p.numel() * p.element_size()
    if not tied:
        total -= emb.numel() * emb.element_size()
        total += emb.shape[1] * emb.element_size()
    return int(total)


def copy_bandwidth(device: str = "cuda", nbytes: int = 1 << 30, repeats: int = 20) -> float:
    """Device copy bandwidth in bytes/s: (read + write) bytes of `dst.copy_(src)`, best of `repeats`."""
    import torch

    n = nbytes // 2
    src = torch.empty(n, dtype=torch.bfloat16, device=device).normal_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    best = float("inf")
    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        for _ in range(repeats):
            start.record()
            dst.copy_(src)
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1000.0)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            dst.copy_(src)
            best = min(best, time.perf_counter() - t0)
    del src, dst
    return 2.0 * n * 2 / best


def decode_tokens_per_s(
    loaded: Any, *, new_tokens: int = 256, prompt: str = "the fox and the crow", static: bool = False
) -> float:
    """Batch-1 greedy decode rate (tokens/s after the first token) with HF generate.

    static=True uses a static KV cache, with which transformers compiles the decode step
    (torch.compile + CUDA graphs) on CUDA.
    """
    import torch

    from bench.raw import _gen_config, _sync, no_eos

    model, tok = loaded.model, loaded.tokenizer
    device = str(next(model.parameters()).device)
    enc = tok([prompt], return_tensors="pt").to(device)
    extra: dict[str, Any] = {"cache_implementation": "static"} if static else {}

    def run(n: int) -> float:
        cfg = _gen_config(loaded, n, **extra)
        _sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode(), no_eos(model, cfg):
            model.generate(**enc, generation_config=cfg)
        _sync(device)
        return time.perf_counter() - t0

    run(new_tokens)  # warm up (and compile)
    run(new_tokens)
    # Prefill + first token cost cancels out in the difference of a long and a short run.
    long_t = min(run(new_tokens) for _ in range(2))
    short_t = min(run(8) for _ in range(2))
    return (new_tokens - 8) / max(long_t - short_t, 1e-9)
