"""Incremental detokenization through the Rust tokenizer gives exactly the transformers text.

`IncrementalDetokenizer` decodes with `tokenizer._tokenizer.decode` where transformers' own
`decode` would add nothing; these tests compare it step by step with the wrapper's decoding for
a byte-level BPE tokenizer (the tiny model's) and a sentencepiece-style one (metaspace with a
stripped leading space, byte fallback for characters outside the vocabulary), and check that
anything else keeps the wrapper.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from reference_server.entrypoints.openai.detokenize import (
    IncrementalDetokenizer,
    decode,
    decoder_for,
    fast_decoder,
)

TEXTS = [
    "The fox and the grapes.",
    " héllo wörld, 日本語 ✓ 🦊!",
    "a\n\nb  c",
    "  leading spaces and trailing  ",
    "🦊🦁🐭 naïve café — «q» ½",
]


def _sentencepiece_like() -> Any:
    """A Llama-style tokenizer built in memory: ▁ for spaces, byte fallback, first space stripped."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in "▁abcdefghijklmnopqrstuvwxyzTHE.,!'\n":
        vocab.setdefault(ch, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in ("▁the", "▁and", "▁fox", "he", "an"):
        left = word[0]
        for ch in word[1:]:
            merges.append((left, ch))
            vocab.setdefault(left + ch, len(vocab))
            left += ch
    model = models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", clean_up_tokenization_spaces=False
    )


@pytest.fixture(scope="module")
def sp_tokenizer() -> Any:
    return _sentencepiece_like()


@pytest.fixture(params=["byte_level", "sentencepiece"])
def tokenizer(request: pytest.FixtureRequest, loaded: Any, sp_tokenizer: Any) -> Any:
    return loaded.tokenizer if request.param == "byte_level" else sp_tokenizer


def _slow(tok: Any) -> Any:
    return lambda ids: decode(tok, ids)


def test_fast_decoder_is_used_for_plain_fast_tokenizers(tokenizer: Any) -> None:
    assert fast_decoder(tokenizer) is not None


def test_fast_decode_equals_wrapper_decode(tokenizer: Any) -> None:
    fast = decoder_for(tokenizer)
    rng = random.Random(7)
    vocab = len(tokenizer)
    for text in TEXTS:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert fast(ids) == decode(tokenizer, ids)
    for _ in range(300):  # any ids, special tokens and broken UTF-8 included
        ids = [rng.randrange(vocab) for _ in range(rng.randint(1, 12))]
        assert fast(ids) == decode(tokenizer, ids), ids


def test_incremental_steps_match_the_wrapper_step_by_step(tokenizer: Any) -> None:
    rng = random.Random(11)
    vocab = len(tokenizer)
    cases: list[tuple[list[int], list[int]]] = []
    for text in TEXTS:
        ids = tokenizer.encode(text, add_special_tokens=False)
        for prompt_text in ("", "Once upon a time", "🦊"):
            cases.append((tokenizer.encode(prompt_text, add_special_tokens=False), ids))
    for _ in range(100):
        cases.append(([rng.randrange(vocab) for _ in range(rng.randint(0, 8))], [rng.randrange(vocab) for _ in range(20)]))
    for prompt, ids in cases:
        fast = IncrementalDetokenizer(tokenizer, prompt)
        slow = IncrementalDetokenizer(tokenizer, prompt, decoder=_slow(tokenizer))
        assert [fast.step(i) for i in ids] == [slow.step(i) for i in ids], (prompt, ids)
        assert fast.flush() == slow.flush()


def test_incremental_concatenation_equals_decode(tokenizer: Any) -> None:
    for text in TEXTS:
        ids = tokenizer.encode(text, add_special_tokens=False)
        d = IncrementalDetokenizer(tokenizer, [])
        out = "".join(d.step(i) for i in ids) + d.flush()
        assert out == decode(tokenizer, ids)
        assert "\ufffd" not in out


def test_sentencepiece_leading_space_and_byte_fallback(sp_tokenizer: Any) -> None:
    tok = sp_tokenizer
    prompt = tok.encode("the fox", add_special_tokens=False)
    ids = tok.encode(" and the 🦊 fox", add_special_tokens=False)
    assert sum(1 for i in ids if tok.convert_ids_to_tokens(i).startswith("<0x")) == 4  # 🦊 as 4 byte tokens
    d = IncrementalDetokenizer(tok, prompt)
    steps = [d.step(i) for i in ids]
    # after a prompt, a word's leading space is text; the emoji appears only once complete
    assert "".join(steps) + d.flush() == decode(tok, prompt + ids)[len(decode(tok, prompt)) :]
    assert "🦊" in steps and not any("\ufffd" in s for s in steps)


def test_anything_else_keeps_the_wrapper(loaded: Any, sp_tokenizer: Any) -> None:
    base = type(sp_tokenizer)

    class PostProcessing(base):  # type: ignore[misc, valid-type]
        def _decode(self, *args: Any, **kwargs: Any) -> str:
            return str(super()._decode(*args, **kwargs)).upper()

    custom = _sentencepiece_like()
    custom.__class__ = PostProcessing
    assert fast_decoder(custom) is None
    ids = custom.encode("the fox", add_special_tokens=False)
    assert decoder_for(custom)(ids) == decode(custom, ids) == "THE FOX"

    patched = _sentencepiece_like()
    patched.decode = lambda ids, **kw: "patched"
    assert fast_decoder(patched) is None
    assert decoder_for(patched)([5]) == "patched"

    class Plain:
        def decode(self, ids: list[int], **kw: Any) -> str:
            return ",".join(map(str, ids))

    assert fast_decoder(Plain()) is None
    d = IncrementalDetokenizer(Plain(), [1])
    assert d.step(2) == ",2"
