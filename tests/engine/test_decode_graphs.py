"""Decode steps through per-bucket graphs (`cuda_graphs.py`) and the fused fast decoder.

CUDA graphs themselves need a GPU; here the runner captures with `eager_capture`, which replays a
step by running it again, so everything around the graphs runs on CPU: buckets, the static input
buffer, filler rows, recapture after the key/value buffers grow, the start-up check and the
fallback when a capture fails.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from reference_server.engine import cuda_graphs  # noqa: E402
from reference_server.engine.cuda_graphs import DecodeGraphs, keys_bucket, rows_bucket  # noqa: E402
from reference_server.engine.fast_decode import FastDecoder, PrefillCache  # noqa: E402

from .test_slots_and_fast_decode import CONTEXT, llama, prompt, run  # noqa: E402


@pytest.fixture(scope="module")
def model() -> Any:
    return llama()


def test_row_buckets_are_powers_of_two_then_multiples_of_eight() -> None:
    assert [rows_bucket(n) for n in range(1, 10)] == [1, 2, 4, 4, 8, 8, 8, 8, 16]
    for n in range(1, 300):
        b = rows_bucket(n)
        assert b >= n and (b <= 8 or b % 8 == 0) and b - n < max(8, n)


def test_key_buckets_cover_the_length_and_stop_at_the_context() -> None:
    assert [keys_bucket(n, 4096) for n in (1, 64, 65, 129, 300, 512, 513, 1100)] == [64, 64, 128, 256, 512, 512, 1024, 1536]
    for n in range(1, 3000):
        b = keys_bucket(n, 2048)
        assert b == min(b, 2048) and (b >= n or b == 2048)
    assert keys_bucket(100, 80) == 80


def test_fused_projections_share_the_model_weights(model: Any) -> None:
    fresh = llama(attention_bias=True)
    ids = torch.tensor([prompt(9, 3)])
    with torch.inference_mode():
        before = fresh(ids).logits
        plain = FastDecoder(fresh)(ids, torch.arange(9)[None], PrefillCache(), None)
        fused = FastDecoder(fresh, fuse=True)
        got = fused(ids, torch.arange(9)[None], PrefillCache(), None)
        after = fresh(ids).logits
    attn = fresh.model.layers[0].self_attn
    (qkv, bias), sizes = fused.layers[0].qkv  # type: ignore[misc]
    assert sizes == [attn.q_proj.weight.shape[0], attn.k_proj.weight.shape[0], attn.v_proj.weight.shape[0]]
    assert attn.q_proj.weight.data_ptr() == qkv.data_ptr()  # a view: no second copy of the weights
    assert attn.v_proj.bias.data_ptr() == bias.data_ptr() + (sizes[0] + sizes[1]) * bias.element_size()
    assert torch.equal(before, after)  # the model's own forward is unchanged
    torch.testing.assert_close(got, plain)


def _engine_tokens(model: Any, **kw: Any) -> tuple[list[list[int]], Any]:
    ps = [prompt(n, seed=n) for n in (3, 11, 30, 7, 19)]
    return run(model, ps, [40, 25, 12, 33, 20], batch_invariant=False, **kw)


def test_graph_decoding_gives_the_tokens_of_hf_generate(model: Any) -> None:
    got, engine = _engine_tokens(model, cuda_graphs=True)
    assert engine._graphs is not None and engine._fast is not None and engine._fast.fused
    for p, n, tokens in zip([prompt(n, seed=n) for n in (3, 11, 30, 7, 19)], [40, 25, 12, 33, 20], got, strict=True):
        ids = torch.tensor([p])
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0
        )
        assert tokens == out[0, len(p) :].tolist()


def test_graphs_are_captured_once_per_bucket(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    captured: list[tuple[int, int, int, int]] = []
    real_step = DecodeGraphs._step

    def counting_step(self: DecodeGraphs, rows: int, keys: int, *rest: Any) -> Any:
        captured.append((id(self), rows, keys, self.slots.generation))
        return real_step(self, rows, keys, *rest)

    monkeypatch.setattr(DecodeGraphs, "_step", counting_step)
    _, engine = _engine_tokens(model, cuda_graphs=True)
    assert engine._graphs is not None
    main = [c[1:] for c in captured if c[0] == id(engine._graphs)]
    assert engine._graphs.captures == len(main)
    # Every (rows, keys) pair is captured at most once per buffer generation; rows are buckets
    # (5 sequences -> 8, then fewer as they finish) and keys too (every sequence stays under 64).
    assert len(main) == len(set(main))
    assert {r for r, _, _ in main} <= {1, 2, 4, 8} and 8 in {r for r, _, _ in main}
    assert {k for _, k, _ in main} == {64}


def test_growing_the_key_buffers_recaptures_the_graphs(model: Any) -> None:
    got, engine = run(model, [prompt(50, 1)], [60], batch_invariant=False, cuda_graphs=True)
    graphs = engine._graphs
    assert graphs is not None and len(got[0]) == 60
    # 50 + 60 positions: keys 64 then 128, and the buffers grew from 64 to 128 on the way.
    assert graphs.captures == 2
    ids = torch.tensor([prompt(50, 1)])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=60, do_sample=False,
                         eos_token_id=None, pad_token_id=0)
    assert got[0] == out[0, 50:].tolist()


def test_a_failing_capture_falls_back_to_plain_decode_steps(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    def capture_once_then_fail(step: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:  # the start-up check passes; the first real capture fails
            raise RuntimeError("operation not permitted when stream is capturing")
        return step

    monkeypatch.setattr(cuda_graphs, "eager_capture", capture_once_then_fail)
    monkeypatch.setattr("reference_server.engine.batching.eager_capture", capture_once_then_fail)
    got, engine = _engine_tokens(model, cuda_graphs=True)
    assert engine._graphs is None and engine._fast is not None
    expected, _ = _engine_tokens(model, cuda_graphs=False)
    assert got == expected


def test_a_graph_that_differs_at_start_up_is_not_used(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = DecodeGraphs.__call__

    def off(self: DecodeGraphs, *args: Any) -> Any:
        return real(self, *args) + 1.0

    monkeypatch.setattr(DecodeGraphs, "__call__", off)
    got, engine = _engine_tokens(model, cuda_graphs=True)
    assert engine._graphs is None and not engine.cuda_graphs
    assert engine._fast is not None  # the plain fast path still checked out
    expected, _ = _engine_tokens(model, cuda_graphs=False)
    assert got == expected


def test_graphs_are_off_by_default_on_cpu_and_in_batch_invariant_mode(model: Any) -> None:
    from reference_server.engine.batching import BatchingEngine

    default = BatchingEngine(model, eos_token_ids=frozenset(), context_length=CONTEXT, model_id="m")
    forced = BatchingEngine(model, eos_token_ids=frozenset(), context_length=CONTEXT, model_id="m",
                            batch_invariant=True, cuda_graphs=True)
    assert not default.cuda_graphs and not forced.cuda_graphs and not forced.compile_pieces


def test_capture_all_covers_every_bucket_the_buffers_allow(model: Any) -> None:
    from reference_server.engine.kv_slots import KVSlots, make_slot_cache

    slots = KVSlots(10, CONTEXT, min_capacity=128)
    cache = make_slot_cache(slots)
    with torch.inference_mode():
        fast = FastDecoder(model)
        pc = PrefillCache()
        fast(torch.tensor([[1]]), torch.tensor([[0]]), pc, None)
        slots.store(0, pc.layers)
        graphs = DecodeGraphs(fast, slots, cache, torch.device("cpu"), 10, cuda_graphs.eager_capture)
        assert slots.capacity == 128
        assert graphs.capture_all() == 5 * 2  # rows 1, 2, 4, 8, 10 (the slot count) x keys 64, 128
        assert graphs.captures == 10
        graphs([3, 4, 5, 6], [0, 0, 0, 0], graphs.keys_for(1))  # the 4-row graph, already there
        assert graphs.captures == 10 and graphs.capture_all() == 10
        slots.ensure_capacity(129)  # new buffers: every graph is stale
        graphs([3], [0], graphs.keys_for(1))
        assert graphs.captures == 11


def _events(model: Any, top_logprobs: list[int], **kw: Any) -> tuple[list[list[Any]], Any]:
    """Every event of three greedy requests submitted together (per-request top_logprobs)."""
    import asyncio

    from reference_server.engine.batching import BatchingEngine
    from reference_server.engine.types import SamplingParams

    async def main() -> tuple[list[list[Any]], Any]:
        engine = BatchingEngine(model, eos_token_ids=frozenset(), context_length=CONTEXT, model_id="m",
                                batch_invariant=False, **kw)
        await engine.start()
        try:
            async def one(p: list[int], k: int) -> list[Any]:
                params = SamplingParams(max_new_tokens=15, temperature=0.0, top_logprobs=k)
                return [e async for e in engine.generate(p, params)]

            ps = [prompt(n, seed=n) for n in (4, 9, 13)]
            return list(await asyncio.gather(*(one(p, k) for p, k in zip(ps, top_logprobs, strict=True)))), engine
        finally:
            await engine.stop()

    return asyncio.run(main())


@pytest.mark.parametrize("top_logprobs", [[0, 0, 0], [0, 3, 0]], ids=["greedy-head", "sampler"])
def test_graph_steps_report_the_logprobs_of_plain_steps(model: Any, top_logprobs: list[int],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from reference_server.engine.batching import BatchingEngine

    emitted = {"n": 0}
    real_emit = BatchingEngine._emit

    def counting_emit(self: BatchingEngine, *args: Any) -> Any:
        emitted["n"] += 1
        return real_emit(self, *args)

    monkeypatch.setattr(BatchingEngine, "_emit", counting_emit)
    graphed, engine = _events(model, top_logprobs, cuda_graphs=True)
    assert engine._graphs is not None
    # All-greedy batches take the graph's own argmax/logprob; one request with top_logprobs
    # sends every step of its batch through the sampler.
    assert (emitted["n"] > 0) == (top_logprobs == [0, 0, 0])
    emitted["n"] = 0
    plain, _ = _events(model, top_logprobs, cuda_graphs=False)
    assert emitted["n"] == 0
    for got, want in zip(graphed, plain, strict=True):
        assert [e.token_id for e in got] == [e.token_id for e in want]
        assert [e.finish_reason for e in got] == [e.finish_reason for e in want]
        torch.testing.assert_close([e.logprob for e in got], [e.logprob for e in want], rtol=1e-4, atol=1e-5)
        for g, w in zip(got, want, strict=True):
            assert [t for t, _ in g.top_logprobs] == [t for t, _ in w.top_logprobs]


def test_compiled_pieces_that_differ_are_dropped_before_the_graphs(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from reference_server.engine import fast_decode

    def miscompiled(fn: Any) -> Any:
        def run(*args: Any) -> Any:
            out = fn(*args)
            return tuple(t * 1.5 for t in out) if isinstance(out, tuple) else out * 1.5

        return run

    monkeypatch.setattr(fast_decode, "_compile", miscompiled)
    got, engine = _engine_tokens(model, cuda_graphs=True, compile_pieces=True)
    assert engine._graphs is not None and engine.cuda_graphs and not engine.compile_pieces
    assert engine._fast is not None and not engine._fast.compiled
    expected, _ = _engine_tokens(model, cuda_graphs=False)
    assert got == expected


# ---------------------------------------------------------------- batched prefill


def test_prompts_admitted_together_are_prefilled_in_one_pass(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from reference_server.engine.batching import BatchingEngine

    groups: list[int] = []
    real = BatchingEngine._prefill_kv_batch

    def counting(self: BatchingEngine, prompts: list[list[int]]) -> Any:
        groups.append(len(prompts))
        return real(self, prompts)

    monkeypatch.setattr(BatchingEngine, "_prefill_kv_batch", counting)
    ps = [prompt(n, seed=n) for n in (3, 11, 30, 7, 19)]
    got, engine = run(model, ps, [20] * 5, batch_invariant=False, cuda_graphs=True)
    assert engine.batched_prefill and groups[0] == 3  # the start-up check's three prompts
    assert sum(groups[1:]) >= 2, "some of the five requests were prefilled together"
    for p, tokens in zip(ps, got, strict=True):
        ids = torch.tensor([p])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
        assert tokens == out[0, len(p) :].tolist()


def test_prefill_groups_keep_their_padded_size_within_the_budget(model: Any) -> None:
    from reference_server.engine.batching import BatchingEngine, _Sequence

    engine = BatchingEngine(model, eos_token_ids=frozenset(), context_length=CONTEXT, model_id="m",
                            batch_invariant=False, prefill_token_budget=40)
    engine._fast = FastDecoder(model)
    seqs = [_Sequence(i, [1] * n, None, None, None) for i, n in enumerate([12, 3, 30, 5, 9, 10])]  # type: ignore[arg-type]
    groups = engine._prefill_groups(seqs)
    assert sorted(len(s.prompt_ids) for g in groups for s in g) == [3, 5, 9, 10, 12, 30]
    for g in groups:
        assert len(g) * max(len(s.prompt_ids) for s in g) <= 40 or len(g) == 1
    assert [len(g) for g in groups] == [4, 1, 1]  # (3, 5, 9, 10): 4 x 10 = 40; then (12), (30)
    invariant = BatchingEngine(model, eos_token_ids=frozenset(), context_length=CONTEXT, model_id="m",
                               batch_invariant=True)
    assert not invariant.batched_prefill


def test_a_batched_prefill_that_differs_is_not_used(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from reference_server.engine.batching import BatchingEngine

    real = BatchingEngine._prefill_kv_batch

    def off(self: BatchingEngine, prompts: list[list[int]]) -> Any:
        kvs, logits = real(self, prompts)
        return kvs, logits + 1.0

    monkeypatch.setattr(BatchingEngine, "_prefill_kv_batch", off)
    got, engine = _engine_tokens(model, cuda_graphs=False)
    assert not engine.batched_prefill and engine._fast is not None


def test_an_additive_mask_built_once_gives_the_boolean_masks_logits(model: Any) -> None:
    """On CUDA the graph builds its attention mask once per step in the model's dtype (SDPA would
    convert a boolean one in every layer); the logits are the same."""
    from reference_server.engine.kv_slots import KVSlots, make_slot_cache

    results = []
    for mask_dtype in (None, torch.float32):
        slots = KVSlots(4, CONTEXT)
        cache = make_slot_cache(slots)
        with torch.inference_mode():
            fast = FastDecoder(model)
            for slot, n in enumerate((5, 9, 2)):
                pc = PrefillCache()
                fast(torch.tensor([prompt(n, seed=n)]), torch.arange(n)[None], pc, None)
                slots.store(slot, pc.layers)
            graphs = DecodeGraphs(fast, slots, cache, torch.device("cpu"), 4, cuda_graphs.eager_capture, mask_dtype)
            results.append(graphs([7, 8, 9, 0], [5, 9, 2, 0], graphs.keys_for(10)).clone())
    assert torch.equal(results[0][:3], results[1][:3])
