"""load_model: device/dtype defaults, local directories, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from reference_server.model import loader  # noqa: E402
from reference_server.model.loader import LoadedModel, ModelLoadError, load_model  # noqa: E402


def test_loads_tiny_path_with_cpu_float32_defaults(tiny_dir: Path, tiny_loaded: LoadedModel) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("defaults differ on CUDA machines")
    lm = tiny_loaded
    assert lm.device == "cpu"
    assert lm.dtype == "float32"
    assert next(lm.model.parameters()).dtype == torch.float32
    assert lm.model_id == tiny_dir.name
    assert lm.context_length == 256
    assert not lm.model.training
    assert not any(p.requires_grad for p in lm.model.parameters())
    tok = lm.tokenizer
    assert lm.eos_token_ids == frozenset(
        {tok.convert_tokens_to_ids("</s>"), tok.convert_tokens_to_ids("<|end|>")}
    )
    assert lm.chat_template and "add_generation_prompt" in lm.chat_template


def test_spec_tiny_is_served_as_tiny(tiny_dir: Path) -> None:
    lm = load_model("tiny", device="cpu")
    assert lm.model_id == "tiny"
    assert lm.context_length == 256


def test_explicit_dtype_is_honoured(tiny_dir: Path) -> None:
    import torch

    lm = load_model(str(tiny_dir), device="cpu", dtype="bfloat16")
    assert lm.dtype == "bfloat16"
    assert next(lm.model.parameters()).dtype == torch.bfloat16


def test_rejects_non_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError, match="neither 'tiny' nor a directory"):
        load_model(str(missing))
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(ValueError, match="directory"):
        load_model(str(file))


def test_rejects_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_resolve_device_and_dtype() -> None:
    import torch

    auto = loader.resolve_device("auto")
    assert auto == ("cuda" if torch.cuda.is_available() else "cpu")
    assert loader.resolve_dtype("auto", "cpu") == "float32"
    assert loader.resolve_dtype("auto", "cuda") == "bfloat16"
    assert loader.resolve_dtype("float16", "cpu") == "float16"
    assert loader.resolve_dtype("bf16", "cpu") == "bfloat16"
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        loader.resolve_dtype("int3", "cpu")


def test_offline_environment() -> None:
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_context_length_fallbacks() -> None:
    from types import SimpleNamespace

    class Tok:
        model_max_length = 512

    assert loader._context_length(SimpleNamespace(n_positions=1024), Tok()) == 1024
    assert loader._context_length(SimpleNamespace(), Tok()) == 512

    class Huge:
        model_max_length = int(1e30)

    assert loader._context_length(SimpleNamespace(), Huge()) == loader.DEFAULT_CONTEXT_LENGTH


def test_without_weights_everything_but_the_model_is_the_same(tiny_dir: Path, tiny_loaded: LoadedModel) -> None:
    bare = load_model(str(tiny_dir), device="cpu", weights=False)
    assert bare.model is None
    assert bare.config is not None and bare.config.vocab_size == tiny_loaded.model.config.vocab_size
    for field in ("model_id", "context_length", "dtype", "eos_token_ids", "chat_template"):
        assert getattr(bare, field) == getattr(tiny_loaded, field), field
    assert bare.device == "cpu"


def test_without_weights_eos_ids_come_from_the_model_config_when_there_is_no_generation_config(
    tmp_path: Path, tiny_dir: Path
) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_dir, folder)
    (folder / "generation_config.json").unlink(missing_ok=True)
    full = load_model(str(folder), device="cpu")
    bare = load_model(str(folder), device="cpu", weights=False)
    assert bare.eos_token_ids == full.eos_token_ids and bare.eos_token_ids
