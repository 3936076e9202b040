"""Slot KV cache, decode-width measurement and the fast decode path of the engine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from reference_server.engine import invariance  # noqa: E402
from reference_server.engine.batching import BatchingEngine  # noqa: E402
from reference_server.engine.fast_decode import FastDecoder, unsupported_reason  # noqa: E402
from reference_server.engine.kv_slots import KVSlots  # noqa: E402
from reference_server.engine.types import SamplingParams  # noqa: E402

CONTEXT = 128


def llama(**overrides: Any) -> Any:
    torch.manual_seed(0)
    settings: dict[str, Any] = {
        "vocab_size": 300,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": CONTEXT,
    }
    config = transformers.LlamaConfig(**{**settings, **overrides})
    return transformers.LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model() -> Any:
    return llama()


def run(model: Any, prompts: list[list[int]], lengths: list[int], **kw: Any) -> tuple[list[list[int]], BatchingEngine]:
    """Greedy tokens for every prompt, all submitted at once, and the (stopped) engine."""

    async def main() -> tuple[list[list[int]], BatchingEngine]:
        engine = BatchingEngine(model, eos_token_ids=frozenset(), context_length=CONTEXT, model_id="m", **kw)
        await engine.start()
        try:

            async def one(p: list[int], n: int) -> list[int]:
                params = SamplingParams(max_new_tokens=n, temperature=0.0)
                return [e.token_id async for e in engine.generate(p, params)]

            got = await asyncio.wait_for(asyncio.gather(*(one(p, n) for p, n in zip(prompts, lengths, strict=True))), 60)
            return list(got), engine
        finally:
            await engine.stop()

    return asyncio.run(main())


def prompt(n: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 300, (n,), generator=g).tolist()


# ---------------------------------------------------------------- KVSlots


def test_slots_store_grow_and_move_keep_every_key() -> None:
    slots = KVSlots(4, context_length=1000)
    kv = [(torch.randn(1, 2, 70, 8), torch.randn(1, 2, 70, 8)) for _ in range(3)]
    slots.store(1, kv)
    assert slots.capacity >= 71
    before = slots.capacity
    slots.ensure_capacity(before + 1)  # grows by doubling, content kept
    assert slots.capacity == 2 * before
    for (k, v), (pk, pv) in zip(slots.layers, kv, strict=True):
        assert torch.equal(k[1, :, :70], pk[0]) and torch.equal(v[1, :, :70], pv[0])
    slots.move(1, 3, 70)
    for (k, _), (pk, _) in zip(slots.layers, kv, strict=True):
        assert torch.equal(k[3, :, :70], pk[0])


def test_slots_never_grow_past_the_context_window() -> None:
    slots = KVSlots(2, context_length=100)
    slots.store(0, [(torch.zeros(1, 1, 90, 4), torch.zeros(1, 1, 90, 4))])
    slots.ensure_capacity(100)
    assert slots.capacity == 100


def test_compaction_moves_a_long_sequence_without_changing_its_tokens(model: Any) -> None:
    """8 short sequences and a long one in slot 8: when the short ones end, it moves to slot 0."""
    ps = [prompt(4 + i, seed=i) for i in range(9)]
    lengths = [3] * 8 + [40]
    together, engine = run(model, ps, lengths)
    (solo,), _ = run(model, [ps[8]], [40])
    assert together[8] == solo
    assert engine._decode_rows == sum(lengths) - len(lengths)  # live rows only, fillers not counted
    # Once the short ones are done, the long one runs alone in the narrowest padded batch (m rows)
    # instead of staying in slot 8 behind 8 free slots (a 9+ row batch).
    m = engine._row_multiple
    assert m in invariance.CANDIDATES
    wide = -(-9 // m) * m
    assert engine._padded_rows <= 2 * wide + 38 * m < 39 * wide


# ---------------------------------------------------------------- decode width


def test_row_multiple_is_the_smallest_invariant_width(monkeypatch: pytest.MonkeyPatch, model: Any) -> None:
    real = torch.nn.functional.linear

    def below_four_differs(x: Any, w: Any, b: Any = None) -> Any:
        out = real(x, w, b)
        return out + 1e-3 if x.shape[0] < 4 else out  # a BLAS whose 1-3 row kernel rounds differently

    monkeypatch.setattr(invariance.torch.nn.functional, "linear", below_four_differs)
    assert invariance.measure_row_multiple(model, 32) == 4


def test_row_multiple_falls_back_to_the_widest(monkeypatch: pytest.MonkeyPatch, model: Any) -> None:
    real = torch.nn.functional.linear

    def never_invariant(x: Any, w: Any, b: Any = None) -> Any:
        return real(x, w, b) + x.shape[0] * 1e-3

    monkeypatch.setattr(invariance.torch.nn.functional, "linear", never_invariant)
    assert invariance.measure_row_multiple(model, 32) == invariance.CANDIDATES[-1]


def test_row_multiple_on_this_machine_keeps_rows_bit_identical(model: Any) -> None:
    m = invariance.measure_row_multiple(model, 16)
    w = model.lm_head.weight
    x = torch.randn(16, 1, w.shape[1])
    full = torch.nn.functional.linear(x, w)
    for n in range(m, 16, m):
        assert torch.equal(torch.nn.functional.linear(x[:n], w), full[:n])


# ---------------------------------------------------------------- fast decode


@pytest.mark.parametrize(
    "overrides",
    [{}, {"attention_bias": True}, {"num_key_value_heads": 4}, {"num_key_value_heads": 1}],
    ids=["gqa", "qkv-bias", "mha", "mqa"],
)
@pytest.mark.parametrize("batch_invariant", [True, False])
def test_fast_decode_matches_the_model_forward(overrides: dict[str, Any], batch_invariant: bool) -> None:
    m = llama(**overrides)
    engine = BatchingEngine(
        m, eos_token_ids=frozenset(), context_length=CONTEXT, model_id="m", batch_invariant=batch_invariant
    )
    with torch.inference_mode():
        assert engine._check_fast_decode() is not None


@pytest.mark.parametrize("fast_decode", [True, False])
def test_greedy_equals_hf_generate_with_and_without_fast_decode(model: Any, fast_decode: bool) -> None:
    ps = [prompt(n, seed=n) for n in (3, 11, 30)]
    got, engine = run(model, ps, [25, 25, 25], fast_decode=fast_decode)
    assert (engine._fast is not None) == fast_decode
    for p, tokens in zip(ps, got, strict=True):
        ids = torch.tensor([p])
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=25, do_sample=False, eos_token_id=None, pad_token_id=0
        )
        assert tokens == out[0, len(p) :].tolist()


def test_other_architectures_decode_through_the_model() -> None:
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(vocab_size=300, n_embd=32, n_layer=2, n_head=2, n_positions=CONTEXT)
    ).eval()
    assert unsupported_reason(gpt2) is not None
    with pytest.raises(ValueError, match="unsupported"):
        FastDecoder(gpt2)
    got, engine = run(gpt2, [prompt(5, 1), prompt(9, 2)], [12, 12])
    assert engine._fast is None
    assert [len(t) for t in got] == [12, 12]


def test_hooked_models_are_not_fast_decoded(model: Any) -> None:
    handle = model.model.layers[0].mlp.register_forward_hook(lambda *a: None)
    try:
        assert unsupported_reason(model) == "module hooks (offloading, adapters)"
    finally:
        handle.remove()
    assert unsupported_reason(model) is None


# ---------------------------------------------------------------- attention buckets


def test_bucket_ends_cover_the_length_within_a_quarter_and_the_context() -> None:
    from reference_server.engine.attention import bucket_end

    ends = [bucket_end(n, 100_000) for n in range(1, 20_000)]
    assert all(e >= n for n, e in zip(range(1, 20_000), ends, strict=True))
    # at most 63 masked keys for short rows, a quarter of the length for long ones
    assert all(e - n < max(64, n * 0.25) for n, e in zip(range(1, 20_000), ends, strict=True))
    assert ends == sorted(ends)  # a row's bucket only grows as it does
    assert len(set(ends)) < 60  # few distinct buckets: few attention calls per layer
    assert bucket_end(250, 256) == 256 and bucket_end(90, 100) == 100


def test_a_row_attends_the_same_whatever_shares_its_bucket() -> None:
    """Stale keys past a row's length and neighbours in its bucket leave its output bit-identical.

    With one intra-op thread, as the engine runs small models on CPU: multi-threaded CPU attention
    kernels split their work by batch size, so their results are not batch-invariant.
    """
    from reference_server.engine.attention import _padding_invariant_attention, bucket_end, decode_rows

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_bucket_invariance(_padding_invariant_attention, bucket_end, decode_rows)
    finally:
        torch.set_num_threads(threads)


def _check_bucket_invariance(attention: Any, bucket_end: Any, decode_rows: Any) -> None:
    torch.manual_seed(0)
    key, value, query = torch.randn(6, 2, 128, 8), torch.randn(6, 2, 128, 8), torch.randn(6, 2, 1, 8)
    lengths = [10, 40, 41, 63, 64, 70]
    spans: list[tuple[int, int] | None] = [(n, bucket_end(n, 128)) for n in lengths]
    module = torch.nn.Module()
    with decode_rows(spans):
        together, _ = attention(module, query, key, value, None)
    noisy = key.clone()
    for b, n in enumerate(lengths):
        noisy[b, :, n:] = 1e4 * torch.randn_like(noisy[b, :, n:])
    for b in range(6):
        alone_spans: list[tuple[int, int] | None] = [None] * 6
        alone_spans[b] = spans[b]
        with decode_rows(alone_spans):
            alone, _ = attention(module, query, noisy, value, None)
        assert torch.equal(alone[b], together[b])
        exact = torch.nn.functional.scaled_dot_product_attention(
            query[b : b + 1], key[b : b + 1, :, : lengths[b]], value[b : b + 1, :, : lengths[b]]
        )
        torch.testing.assert_close(together[b : b + 1], exact.transpose(1, 2))


def test_a_fast_path_that_differs_is_not_used(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = FastDecoder.__call__

    def off_by_a_bit(self: FastDecoder, *args: Any) -> Any:
        return real(self, *args) + 1e-6

    monkeypatch.setattr(FastDecoder, "__call__", off_by_a_bit)
    engine = BatchingEngine(model, eos_token_ids=frozenset(), context_length=CONTEXT, model_id="m")
    with torch.inference_mode():
        assert engine._check_fast_decode() is None
    assert engine._fast is None
