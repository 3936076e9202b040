"""The built-in tiny model: tokenizer, chat template, generation quality, caching, determinism."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from reference_server.model import tiny

pytest.importorskip("torch")
pytest.importorskip("transformers")

TRICKY = [
    "",
    " ",
    "  two  spaces  ",
    "\n",
    "line one\nline two\n\n  indented\tand tabbed\r\n",
    "Hello, world! How's it going? (Fine.) [ok] {x: 1}; a-b_c/d\\e",
    "café – naïve “quotes” — 😀 日本語",
    'The fox said: "I\'ll eat it," and ate it.',
    "<|user|> markers in text",
    "1234567890 3.14159 1e-5 0x1F",
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_constants() -> None:
    assert tiny.TINY_MODEL_ID == "tiny"
    assert tiny.TINY_CONTEXT_LENGTH == 256


def test_corpus_parses_into_fables(corpus_text: str) -> None:
    assert 40_000 <= len(corpus_text.encode()) <= 120_000
    fables = tiny.parse_fables(corpus_text)
    assert len(fables) >= 50
    assert all(f.title and f.body for f in fables)
    assert sum(f.moral is not None for f in fables) >= 30


def test_build_dir_contents(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= names
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["max_position_embeddings"] == tiny.TINY_CONTEXT_LENGTH
    gen = json.loads((tiny_dir / "generation_config.json").read_text())
    assert isinstance(gen["eos_token_id"], list) and len(gen["eos_token_id"]) == 2


def test_cached_build_is_reused(tiny_dir: Path) -> None:
    assert tiny.build_tiny_model() == tiny_dir
    assert tiny_dir.name.startswith("tiny-")


@pytest.mark.parametrize("text", TRICKY)
def test_tokenizer_round_trips_tricky_strings(tiny_tokenizer, text: str) -> None:
    ids = tiny_tokenizer.encode(text, add_special_tokens=False)
    assert tiny_tokenizer.decode(ids) == text


def test_tokenizer_round_trips_corpus(tiny_tokenizer, corpus_text: str) -> None:
    for start in range(0, len(corpus_text), 4_000):
        sample = corpus_text[start : start + 1_500]
        assert tiny_tokenizer.decode(tiny_tokenizer.encode(sample, add_special_tokens=False)) == sample


def test_incremental_decode_matches_full_decode(tiny_tokenizer) -> None:
    text = "A lion was awakened from sleep by a mouse.\n\nLittle friends may prove great friends."
    ids = tiny_tokenizer.encode(text, add_special_tokens=False)
    assert "".join(tiny_tokenizer.decode([i]) for i in ids) == text


def test_tokens_are_multi_character(tiny_tokenizer, corpus_text: str) -> None:
    ids = tiny_tokenizer.encode(corpus_text, add_special_tokens=False)
    assert len(corpus_text) / len(ids) > 2.5
    assert 1000 <= len(tiny_tokenizer) <= 2100


def test_special_tokens(tiny_tokenizer) -> None:
    tok = tiny_tokenizer
    assert (tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token) == ("<s>", "</s>", "<unk>", "<pad>")
    for marker in ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"):
        assert len(tok.encode(marker, add_special_tokens=False)) == 1
    # No BOS/EOS is added implicitly: the server controls the exact prompt ids.
    assert tok.encode("hi") == tok.encode("hi", add_special_tokens=False)


def test_chat_template(tiny_tokenizer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me a fable."},
        {"role": "assistant", "content": "A fox saw some grapes."},
        {"role": "user", "content": "And then?"},
    ]
    text = tiny_tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nTell me a fable.<|end|>\n"
        "<|assistant|>\nA fox saw some grapes.<|end|>\n<|user|>\nAnd then?<|end|>\n"
    )
    assert text == tiny.render_chat(messages)
    prompt = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == text + "<|assistant|>\n"
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]}]
    assert tiny_tokenizer.apply_chat_template(parts, tokenize=False) == "<|user|>\nHello<|end|>\n"


def _greedy(loaded, prompt: str, n: int = 48) -> str:
    import torch

    tok, model = loaded.tokenizer, loaded.model
    ids = tok.encode(prompt, add_special_tokens=False)
    out: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([ids + out])).logits[0, -1]
            nxt = int(logits.argmax())
            if nxt in loaded.eos_token_ids:
                break
            out.append(nxt)
    return tok.decode(out)


def test_greedy_generation_is_mostly_english(tiny_loaded, corpus_text: str) -> None:
    vocab = set(re.findall(r"[a-z']+", corpus_text.lower()))
    prompts = ["A lion was", "The fox", "A wolf, meeting with a lamb", "Once upon a time"]
    chat = tiny_loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me a story."}], tokenize=False, add_generation_prompt=True
    )
    words: list[str] = []
    for prompt in [*prompts, chat]:
        words += re.findall(r"[a-z']+", _greedy(tiny_loaded, prompt).lower())
    assert len(words) >= 30
    known = sum(w in vocab for w in words)
    assert known / len(words) >= 0.8, words


def test_chat_reply_stops(tiny_loaded) -> None:
    prompt = tiny_loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello!"}], tokenize=False, add_generation_prompt=True
    )
    reply = _greedy(tiny_loaded, prompt, n=60)
    assert reply.strip()
    assert re.search(r"[A-Za-z]{3}", reply)


def test_determinism_of_cheap_builds(tmp_path: Path) -> None:
    a = tiny.build_tiny_model(tmp_path / "a", steps=3)
    b = tiny.build_tiny_model(tmp_path / "b", steps=3)
    assert a.name == b.name
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    for name in files:
        assert _sha(a / name) == _sha(b / name), name
    # cached: a second call returns the same directory without rebuilding
    mtime = (a / "model.safetensors").stat().st_mtime_ns
    assert tiny.build_tiny_model(tmp_path / "a", steps=3) == a
    assert (a / "model.safetensors").stat().st_mtime_ns == mtime
    # force rebuilds in place, still byte-identical
    assert tiny.build_tiny_model(tmp_path / "a", steps=3, force=True) == a
    assert _sha(a / "model.safetensors") == _sha(b / "model.safetensors")
    leftovers = [
        p.name for p in (tmp_path / "a").iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")
    ]
    assert leftovers == []


def test_build_restores_torch_state(tmp_path: Path) -> None:
    import torch

    threads = torch.get_num_threads()
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    tiny.build_tiny_model(tmp_path, steps=1)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.rand(3), expected)


def test_cache_root_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    assert tiny.default_cache_root() == tmp_path / "cache"
    monkeypatch.delenv("OPENAI_CONFORMANCE_CACHE")
    assert tiny.default_cache_root() == Path.home() / ".cache" / "openai-conformance"


def test_cache_key_depends_on_steps() -> None:
    assert tiny.build_key(tiny.TinyHyperparameters()) != tiny.build_key(tiny.TinyHyperparameters(steps=3))
