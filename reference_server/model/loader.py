"""Load the model the reference server serves: the built-in ``tiny`` model or a local HF checkpoint.

Never reaches the network: ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` default to 1 in this process
and every ``from_pretrained`` call passes ``local_files_only=True``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from reference_server.model.tiny import TINY_MODEL_ID, build_tiny_model  # noqa: E402

_DTYPES = ("float32", "bfloat16", "float16")
_DTYPE_ALIASES = {
    "fp32": "float32",
    "float": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
}
_CONTEXT_ATTRS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "n_ctx",
    "max_sequence_length",
)
DEFAULT_CONTEXT_LENGTH = 2048


class ModelLoadError(ValueError):
    """The model spec cannot be loaded (not a directory, no config.json, bad device/dtype...)."""


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel, in eval mode, gradients off
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    model_id: str  # the id served in /v1/models: "tiny" or the directory's basename
    context_length: int  # prompt + completion tokens
    device: str  # "cpu", "cuda:0"
    dtype: str  # "float32", "bfloat16", "float16"
    eos_token_ids: frozenset[int]
    chat_template: str | None
    config: Any = None  # the model's transformers config (also when loaded without weights)


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"unknown device {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    name = _DTYPE_ALIASES.get(dtype, dtype)
    if name not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; expected 'auto' or one of {', '.join(_DTYPES)}")
    return name


def _context_length(config: Any, tokenizer: Any) -> int:
    configs = [config]
    get_text = getattr(config, "get_text_config", None)
    if callable(get_text):
        text_config = get_text()
        if text_config is not None and text_config is not config:
            configs.insert(0, text_config)
    for cfg in configs:
        for attr in _CONTEXT_ATTRS:
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10_000_000:  # HF uses ~1e30 for "unknown"
        return value
    return DEFAULT_CONTEXT_LENGTH


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    for source in (getattr(gen, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source if i is not None)
    return frozenset(ids)


def _transformers_at_least(major: int, minor: int) -> bool:
    import transformers

    parts = transformers.__version__.split(".")
    try:
        return (int(parts[0]), int(parts[1])) >= (major, minor)
    except (ValueError, IndexError):
        return True


def load_model(spec: str = "tiny", device: str = "auto", dtype: str = "auto", *, weights: bool = True) -> LoadedModel:
    """Load ``spec`` ("tiny" or a local Hugging Face causal-LM directory) for inference.

    device: "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:N".
    dtype: "auto" (bfloat16 on CUDA, float32 on CPU), "float32", "bfloat16", "float16".
    weights=False: tokenizer, config and what is derived from them, `model` None (for a process that
    serves HTTP while another one holds the weights: it never touches the device).
    """
    if spec == TINY_MODEL_ID:
        path = build_tiny_model()
        model_id = TINY_MODEL_ID
    else:
        path = Path(spec).expanduser()
        if not path.is_dir():
            raise ModelLoadError(
                f"model {spec!r} is neither 'tiny' nor a directory; pass the path of a local "
                "Hugging Face model directory (models are never downloaded)"
            )
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"model directory {str(path)!r} has no config.json; is it a Hugging Face model?"
            )
        model_id = path.resolve().name

    dev = resolve_device(device)
    dtype_name = resolve_dtype(dtype, dev)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if not weights:
        return _without_weights(path, tokenizer, model_id, dev, dtype_name)
    # transformers >= 4.56 calls the argument `dtype`; older releases only know `torch_dtype`.
    dtype_kw = "dtype" if _transformers_at_least(4, 56) else "torch_dtype"
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(path), local_files_only=True, **{dtype_kw: getattr(torch, dtype_name)}
    )
    model.to(dev)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    param_device = next(model.parameters()).device
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=model_id,
        context_length=_context_length(model.config, tokenizer),
        device=str(param_device),
        dtype=dtype_name,
        eos_token_ids=_eos_ids(model, tokenizer),
        chat_template=_chat_template(tokenizer),
        config=model.config,
    )


def _chat_template(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: serve the default one
        template = template.get("default")
    return template if isinstance(template, str) else None


def _without_weights(path: Path, tokenizer: Any, model_id: str, device: str, dtype: str) -> LoadedModel:
    from types import SimpleNamespace

    from transformers import AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    try:
        generation = GenerationConfig.from_pretrained(str(path), local_files_only=True)
    except OSError:  # no generation_config.json: transformers derives it from the model config
        generation = GenerationConfig.from_model_config(config)
    return LoadedModel(
        model=None,
        tokenizer=tokenizer,
        model_id=model_id,
        context_length=_context_length(config, tokenizer),
        device=device,
        dtype=dtype,
        eos_token_ids=_eos_ids(SimpleNamespace(generation_config=generation), tokenizer),
        chat_template=_chat_template(tokenizer),
        config=config,
    )
