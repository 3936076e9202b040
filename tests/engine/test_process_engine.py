"""The engine in a child process: same tokens as in-process, cancellation, limits, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from reference_server.engine.batching import BatchingEngine  # noqa: E402
from reference_server.engine.errors import EngineFailure, EngineOverloaded, EngineStopped  # noqa: E402
from reference_server.engine.process import ModelSpec, ProcessEngine  # noqa: E402
from reference_server.engine.types import SamplingParams, TokenEvent  # noqa: E402
from reference_server.model.loader import load_model  # noqa: E402

T = TypeVar("T")
SPEC = ModelSpec("tiny", device="cpu", dtype="auto")


@pytest.fixture(scope="module")
def loaded() -> Any:
    return load_model("tiny", device="cpu")


def with_process_engine(loaded: Any, body: Callable[[ProcessEngine], Awaitable[T]], **kw: Any) -> T:
    async def main() -> T:
        engine = ProcessEngine.from_loaded(loaded, SPEC, **kw)
        await engine.start()
        try:
            return await asyncio.wait_for(body(engine), timeout=120)
        finally:
            await engine.stop()

    return asyncio.run(main())


async def events(engine: Any, prompt: list[int], params: SamplingParams) -> list[TokenEvent]:
    return [e async for e in engine.generate(prompt, params)]


def prompts(loaded: Any) -> list[list[int]]:
    texts = ["The fox and the crow", "A lion lay asleep", "The north wind and the sun disputed which"]
    return [list(loaded.tokenizer(t)["input_ids"]) for t in texts]


GREEDY = SamplingParams(max_new_tokens=24, temperature=0.0, top_logprobs=2)


def test_same_events_and_prompt_logprobs_as_in_process(loaded: Any) -> None:
    ps = prompts(loaded)

    async def in_process() -> tuple[list[list[TokenEvent]], Any]:
        engine = BatchingEngine.from_loaded(loaded)
        await engine.start()
        try:
            got = await asyncio.gather(*(events(engine, p, GREEDY) for p in ps))
            return list(got), await engine.prompt_logprobs(ps[2], 3)
        finally:
            await engine.stop()

    async def remote(engine: ProcessEngine) -> tuple[list[list[TokenEvent]], Any, Any]:
        got = await asyncio.gather(*(events(engine, p, GREEDY) for p in ps))
        return list(got), await engine.prompt_logprobs(ps[2], 3), engine.metrics()

    expected, expected_lp = asyncio.run(in_process())
    got, got_lp, metrics = with_process_engine(loaded, remote)
    assert got == expected  # token ids, logprobs and top logprobs, bit for bit
    assert got_lp == expected_lp
    assert metrics.requests_completed == 3 and metrics.generated_tokens == sum(len(e) for e in got)


def test_cancel_frees_the_slot_and_limits_hold(loaded: Any) -> None:
    p = prompts(loaded)[0]

    async def body(engine: ProcessEngine) -> None:
        stream = engine.generate(p, SamplingParams(max_new_tokens=200, temperature=0.0, ignore_eos=True))
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        for _ in range(500):
            m = engine.metrics()
            if m.requests_cancelled == 1 and m.running == 0:
                break
            await asyncio.sleep(0.01)
        assert engine.metrics().requests_cancelled == 1 and engine.metrics().running == 0
        with pytest.raises(ValueError, match="no room"):
            engine.generate(list(range(engine.context_length)), GREEDY)
        with pytest.raises(ValueError, match="at least one token"):
            engine.generate([], GREEDY)
        assert len(await events(engine, p, GREEDY)) == 24  # still serving

    with_process_engine(loaded, body)


def test_a_full_queue_is_overloaded_at_once(loaded: Any) -> None:
    async def body(engine: ProcessEngine) -> None:
        with pytest.raises(EngineOverloaded):
            engine.generate(prompts(loaded)[0], GREEDY)

    with_process_engine(loaded, body, max_queue=0)


def test_stop_ends_in_flight_streams(loaded: Any) -> None:
    async def main() -> BaseException | None:
        engine = ProcessEngine.from_loaded(loaded, SPEC)
        await engine.start()
        stream = engine.generate(prompts(loaded)[0], SamplingParams(max_new_tokens=200, temperature=0.0, ignore_eos=True))
        await stream.__anext__()
        await engine.stop()
        try:
            async for _ in stream:
                pass
        except EngineStopped as exc:
            return exc
        return None

    assert isinstance(asyncio.run(asyncio.wait_for(main(), 120)), EngineStopped)


def test_a_dead_child_fails_streams_and_later_requests(loaded: Any) -> None:
    async def body(engine: ProcessEngine) -> None:
        stream = engine.generate(prompts(loaded)[0], SamplingParams(max_new_tokens=200, temperature=0.0, ignore_eos=True))
        await stream.__anext__()
        engine._proc.kill()
        with pytest.raises(EngineFailure):
            async for _ in stream:
                pass
        with pytest.raises(EngineStopped):
            engine.generate(prompts(loaded)[0], GREEDY)

    with_process_engine(loaded, body)


def test_a_model_that_cannot_load_fails_the_start(loaded: Any, tmp_path: Any) -> None:
    engine = ProcessEngine.from_loaded(loaded, ModelSpec(str(tmp_path / "missing"), device="cpu", dtype="auto"))
    with pytest.raises(EngineFailure, match="failed to start"):
        asyncio.run(engine.start())


def test_the_http_side_needs_no_weights(loaded: Any) -> None:
    """What `reference-server` does by default: the parent loads tokenizer and config only."""
    bare = load_model("tiny", device="cpu", weights=False)
    engine = ProcessEngine.from_loaded(bare, SPEC, max_batch=4, cuda_graphs=False)
    assert engine.vocab_size == loaded.model.config.vocab_size
    assert (engine.context_length, engine.model_id) == (loaded.context_length, loaded.model_id)

    async def body(e: ProcessEngine) -> list[TokenEvent]:
        return await events(e, prompts(loaded)[0], GREEDY)

    got = with_process_engine(bare, body, max_batch=4, cuda_graphs=False)
    assert len(got) == 24 and got[-1].finish_reason == "length"
