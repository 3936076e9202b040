"""Shared fixtures: one built tiny model (cached on disk, like the server uses) per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    from reference_server.model.tiny import build_tiny_model

    return build_tiny_model()


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_dir), local_files_only=True)


@pytest.fixture(scope="session")
def tiny_loaded(tiny_dir: Path):
    from reference_server.model.loader import load_model

    return load_model(str(tiny_dir), device="cpu")


@pytest.fixture(scope="session")
def corpus_text() -> str:
    from reference_server.model.tiny import CORPUS_PATH

    return CORPUS_PATH.read_text(encoding="utf-8")
