"""The continuous-batching engine on a random-weight tiny Llama (CPU, float32)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from reference_server.engine.batching import BatchingEngine  # noqa: E402
from reference_server.engine.errors import EngineOverloaded, EngineStopped  # noqa: E402
from reference_server.engine.types import SamplingParams, TokenEvent  # noqa: E402

T = TypeVar("T")
CONTEXT = 128
LENGTHS = [5, 17, 3, 40, 9, 25, 12, 60]


@pytest.fixture(scope="module")
def model() -> Any:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT,
    )
    return transformers.LlamaForCausalLM(config).eval()


def prompts(lengths: list[int], seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 300, (n,), generator=g).tolist() for n in lengths]


def with_engine(
    model: Any, body: Callable[[BatchingEngine], Awaitable[T]], eos: frozenset[int] = frozenset(), **kw: Any
) -> T:
    async def main() -> T:
        engine = BatchingEngine(model, eos_token_ids=eos, context_length=CONTEXT, model_id="tiny", **kw)
        await engine.start()
        try:
            return await asyncio.wait_for(body(engine), timeout=60)
        finally:
            await engine.stop()

    return asyncio.run(main())


async def collect(engine: BatchingEngine, prompt: list[int], params: SamplingParams) -> list[TokenEvent]:
    return [event async for event in engine.generate(prompt, params)]


def greedy(n: int, **kw: Any) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, temperature=0.0, **kw)


def tokens(events: list[TokenEvent]) -> list[int]:
    return [e.token_id for e in events]


def hf_greedy(model: Any, prompt: list[int], n: int) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )
    return list(out[0, len(prompt) :].tolist())


def test_greedy_matches_hf_generate(model: Any) -> None:
    ps = prompts([5, 17, 40])
    expected = [hf_greedy(model, p, 20) for p in ps]

    async def body(engine: BatchingEngine) -> list[list[TokenEvent]]:
        return [await collect(engine, p, greedy(20)) for p in ps]

    got = with_engine(model, body)
    for events, want in zip(got, expected, strict=True):
        assert tokens(events) == want
        assert [e.finish_reason for e in events] == [None] * 19 + ["length"]


@pytest.mark.parametrize("batch_invariant", [True, False])
def test_greedy_does_not_depend_on_the_batch(model: Any, batch_invariant: bool) -> None:
    ps = prompts(LENGTHS)

    async def body(engine: BatchingEngine) -> tuple[list[TokenEvent], list[list[TokenEvent]]]:
        alone = await collect(engine, ps[0], greedy(30))
        together = await asyncio.gather(*(collect(engine, p, greedy(30)) for p in ps))
        return alone, together

    alone, together = with_engine(model, body, batch_invariant=batch_invariant)
    assert tokens(alone) == tokens(together[0])
    if batch_invariant:  # bit-identical numbers, not just the same argmax
        assert [e.logprob for e in alone] == [e.logprob for e in together[0]]


def test_32_concurrent_requests_each_equal_their_solo_run(model: Any) -> None:
    ps = prompts([3 + (7 * i) % 50 for i in range(32)], seed=2)

    async def body(engine: BatchingEngine) -> tuple[list[list[int]], list[list[int]], float]:
        solo = [tokens(await collect(engine, p, greedy(8 + i % 5))) for i, p in enumerate(ps)]
        together = await asyncio.gather(*(collect(engine, p, greedy(8 + i % 5)) for i, p in enumerate(ps)))
        return solo, [tokens(t) for t in together], engine.metrics().average_batch_size

    solo, together, _ = with_engine(model, body)
    assert together == solo
    assert all(len(t) == 8 + i % 5 for i, t in enumerate(together))


def test_seed_reproducible_whatever_the_batch(model: Any) -> None:
    ps = prompts(LENGTHS)
    params = SamplingParams(max_new_tokens=20, temperature=0.9, top_p=0.95, top_k=100, seed=1234)

    async def body(engine: BatchingEngine) -> list[list[int]]:
        first = tokens(await collect(engine, ps[0], params))
        second = tokens(await collect(engine, ps[0], params))
        mixed = await asyncio.gather(
            collect(engine, ps[0], params),
            *(
                collect(engine, p, SamplingParams(max_new_tokens=25, temperature=1.0, seed=i))
                for i, p in enumerate(ps)
            ),
        )
        other = tokens(
            await collect(engine, ps[0], SamplingParams(max_new_tokens=20, temperature=0.9, seed=99))
        )
        return [first, second, tokens(mixed[0]), other]

    first, second, in_batch, other = with_engine(model, body)
    assert first == second == in_batch
    assert other != first


def test_top_k_one_is_greedy(model: Any) -> None:
    p = prompts([11])[0]

    async def body(engine: BatchingEngine) -> tuple[list[int], list[int]]:
        g = tokens(await collect(engine, p, greedy(15)))
        k1 = tokens(await collect(engine, p, SamplingParams(max_new_tokens=15, temperature=1.5, top_k=1)))
        return g, k1

    g, k1 = with_engine(model, body)
    assert g == k1


def test_logit_bias_bans_and_forces(model: Any) -> None:
    p = prompts([9])[0]

    async def body(engine: BatchingEngine) -> tuple[list[int], list[int], list[int]]:
        plain = tokens(await collect(engine, p, greedy(15)))
        banned = {t: -100.0 for t in set(plain)}
        without = tokens(await collect(engine, p, greedy(15, logit_bias=banned)))
        forced = tokens(
            await collect(engine, p, SamplingParams(max_new_tokens=10, logit_bias={42: 100.0}, seed=3))
        )
        return plain, without, forced

    plain, without, forced = with_engine(model, body)
    assert not set(plain) & set(without)
    assert forced == [42] * 10


def test_penalties_change_the_output(model: Any) -> None:
    p = prompts([9])[0]

    async def body(engine: BatchingEngine) -> list[list[int]]:
        plain = tokens(await collect(engine, p, greedy(30)))
        freq = tokens(await collect(engine, p, greedy(30, frequency_penalty=2.0)))
        pres = tokens(await collect(engine, p, greedy(30, presence_penalty=2.0)))
        return [plain, freq, pres]

    plain, freq, pres = with_engine(model, body)
    assert freq != plain and pres != plain
    # A presence penalty of 2 dwarfs this model's logit spread: no token repeats.
    assert len(set(pres)) == len(pres)
    assert len(set(plain)) < len(plain)


def test_top_logprobs_sorted_and_consistent(model: Any) -> None:
    p = prompts([7])[0]

    def body(engine: BatchingEngine) -> Awaitable[list[TokenEvent]]:
        return collect(engine, p, greedy(10, top_logprobs=5))

    for event in with_engine(model, body):
        assert len(event.top_logprobs) == 5
        values = [lp for _, lp in event.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert event.top_logprobs[0] == (event.token_id, event.logprob)
        assert all(lp <= 0 for lp in values)


def test_cancellation_frees_the_slot(model: Any) -> None:
    ps = prompts([5, 8, 13])

    async def body(engine: BatchingEngine) -> tuple[int, list[int], Any, Any]:
        victim = engine.generate(ps[0], greedy(100))
        survivor = asyncio.ensure_future(collect(engine, ps[1], greedy(40)))
        for _ in range(3):
            await victim.__anext__()
        await victim.aclose()  # type: ignore[attr-defined]
        # A consumer task cancelled mid-stream (client disconnect) frees its slot too.
        task = asyncio.ensure_future(collect(engine, ps[2], greedy(100)))
        await asyncio.sleep(0.01)
        task.cancel()
        done = await survivor
        for _ in range(200):
            if engine.metrics().running == 0:
                break
            await asyncio.sleep(0.01)
        return len(done), tokens(done), engine.metrics(), [e async for e in victim]

    n, _, metrics, after_close = with_engine(model, body)
    assert n == 40
    assert metrics.running == 0 and metrics.waiting == 0
    assert metrics.requests_cancelled == 2
    assert after_close == []


def test_overloaded_when_the_queue_is_full(model: Any) -> None:
    ps = prompts([4, 5, 6, 7, 8])

    async def body(engine: BatchingEngine) -> tuple[int, int]:
        streams = [engine.generate(ps[0], greedy(120))]
        await streams[0].__anext__()  # admitted: the only slot is now taken
        accepted = 0
        with pytest.raises(EngineOverloaded) as info:
            for p in ps[1:]:
                streams.append(engine.generate(p, greedy(5)))
                accepted += 1
        assert info.value.retry_after > 0
        for s in streams:
            await s.aclose()  # type: ignore[attr-defined]
        # Once the queue drains, requests are accepted again.
        events = await collect(engine, ps[4], greedy(3))
        return accepted, len(events)

    accepted, n = with_engine(model, body, max_batch=1, max_queue=2)
    assert accepted == 2 and n == 3


def test_length_and_context_limits(model: Any) -> None:
    long_prompt = prompts([CONTEXT - 8])[0]

    async def body(engine: BatchingEngine) -> tuple[list[TokenEvent], list[TokenEvent], list[TokenEvent]]:
        one = await collect(engine, long_prompt[:5], greedy(1))
        seven = await collect(engine, long_prompt[:5], SamplingParams(max_new_tokens=7, seed=0))
        clipped = await collect(engine, long_prompt, greedy(50))
        return one, seven, clipped

    one, seven, clipped = with_engine(model, body)
    assert [e.finish_reason for e in one] == ["length"]
    assert [e.finish_reason for e in seven] == [None] * 6 + ["length"]
    assert len(clipped) == 8 and clipped[-1].finish_reason == "length"


def test_rejects_impossible_requests(model: Any) -> None:
    async def body(engine: BatchingEngine) -> None:
        with pytest.raises(ValueError):
            engine.generate([], greedy(3))
        with pytest.raises(ValueError):
            engine.generate(list(range(CONTEXT)), greedy(3))
        with pytest.raises(ValueError):
            engine.generate([1, 2], greedy(0))

    with_engine(model, body)
    with pytest.raises(EngineStopped):
        BatchingEngine(model, eos_token_ids=frozenset(), context_length=CONTEXT, model_id="t").generate(
            [1], greedy(1)
        )


def test_eos_stops_with_the_eos_token(model: Any) -> None:
    p = prompts([6])[0]
    plain = hf_greedy(model, p, 12)
    eos = plain[4]
    first = plain.index(eos)

    async def body(engine: BatchingEngine) -> tuple[list[TokenEvent], list[TokenEvent]]:
        stopped = await collect(engine, p, greedy(12))
        ignored = await collect(engine, p, greedy(12, ignore_eos=True))
        return stopped, ignored

    stopped, ignored = with_engine(model, body, eos=frozenset({eos}))
    assert tokens(stopped) == plain[: first + 1]
    assert stopped[-1].token_id == eos and stopped[-1].finish_reason == "stop"
    assert all(e.finish_reason is None for e in stopped[:-1])
    assert tokens(ignored) == plain and ignored[-1].finish_reason == "length"


def test_prompt_logprobs(model: Any) -> None:
    p = prompts([10])[0]

    result = with_engine(model, lambda engine: engine.prompt_logprobs(p, 3))
    assert [r.token_id for r in result] == p
    assert result[0].logprob is None and result[0].top_logprobs == []
    with torch.inference_mode():
        ref = torch.log_softmax(model(torch.tensor([p])).logits[0].float(), dim=-1)
    for i in range(1, len(p)):
        assert result[i].logprob == pytest.approx(ref[i - 1, p[i]].item(), abs=1e-5)
        values = [lp for _, lp in result[i].top_logprobs]
        assert len(values) == 3 and values == sorted(values, reverse=True)
        assert result[i].top_logprobs[0][0] == int(ref[i - 1].argmax())


def test_stop_ends_streams_with_engine_stopped(model: Any) -> None:
    p = prompts([5])[0]

    async def main() -> tuple[Any, int]:
        engine = BatchingEngine(
            model, eos_token_ids=frozenset(), context_length=CONTEXT, model_id="t", max_batch=1
        )
        await engine.start()
        running = engine.generate(p, greedy(120))
        waiting = engine.generate(p, greedy(5))
        await running.__anext__()
        await engine.stop()
        outcomes: list[EngineStopped | None] = []
        for stream in (running, waiting):
            try:
                async for _ in stream:
                    pass
                outcomes.append(None)
            except EngineStopped as exc:
                outcomes.append(exc)
        return outcomes, engine.metrics().running

    outcomes, running = asyncio.run(main())
    assert all(isinstance(o, EngineStopped) for o in outcomes)
    assert running == 0


def test_throughput_sanity(model: Any) -> None:
    """Not asserted: tokens/s for 1 vs 16 concurrent streams (see -s output)."""
    ps = prompts([8 + i for i in range(16)], seed=3)

    async def body(engine: BatchingEngine) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        one = await collect(engine, ps[0], greedy(64))
        t1 = time.perf_counter()
        many = await asyncio.gather(*(collect(engine, p, greedy(64)) for p in ps))
        t2 = time.perf_counter()
        return len(one) / (t1 - t0), sum(map(len, many)) / (t2 - t1), engine.metrics().average_batch_size

    single, sixteen, avg = with_engine(model, body)
    print(f"\nthroughput: 1 stream {single:.0f} tok/s, 16 streams {sixteen:.0f} tok/s (avg batch {avg:.1f})")
