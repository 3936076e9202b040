"""A continuous-batching generation engine over any Hugging Face causal LM.

One background thread owns all torch work. Each iteration it

1. runs queued side jobs (prompt logprobs),
2. drops sequences that finished or whose consumer closed its iterator,
3. admits waiting sequences up to `max_batch`: each new prompt is prefilled alone (no padding, so
   its first token is exactly what the model computes for that prompt) and its KV cache is copied
   into a free slot of the preallocated per-sequence buffers (`kv_slots.py`),
4. runs ONE decode forward pass for every running sequence, with per-row position ids; each row
   writes its new key/value in place at its own length and attends only to its own keys, then
   one token is sampled per sequence.

Tokens reach the consumers through per-sequence asyncio queues fed with
`loop.call_soon_threadsafe`, so the event loop never waits for torch.

Batch invariance: greedy output must not depend on what else is in the batch. Two things make a
row's numbers depend on its neighbours: the attention reduction over a padded key length, and
BLAS kernels chosen by the number of rows (on CPU, 1-3 row GEMMs often take other code paths than
4+, and thread splits of odd row counts differ). With `batch_invariant=True` (the default on CPU)
the engine attends each row over its own keys with a span that depends on its length alone (see
`attention.py`) and rounds the decode batch up to a multiple of a width measured at start-up on
the model's own weights (`invariance.py`, at most 8) with inert filler rows (free slots), so a
sequence computes bit-identical logits alone or in any batch. That holds with one intra-op thread,
which the engine uses for small models on CPU: CPU attention kernels running several threads split
their work by batch size, so larger CPU models get results equal up to floating-point noise.
Without invariance, rows attend over the batch's longest key range with a padding mask. On GPU the
default is off (cuBLAS kernel choice varies with shape anyway); results there are equal up to floating-point noise.

On GPU (without invariance) decode steps run as CUDA graphs, one per bucket of rows and keys
(`cuda_graphs.py`), of the fast decoder with fused projections and `torch.compile`d element-wise
pieces (`fast_decode.py`): a ~1B model's step is otherwise bound by kernel launches, not by memory.
Each option is checked against the model's own forward at start-up and dropped if it differs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import torch

from .attention import bucket_end, decode_rows, enable_padding_invariant_attention
from .cuda_graphs import CudaGraphCapture, DecodeGraphs, eager_capture, rows_bucket
from .errors import EngineFailure, EngineOverloaded, EngineStopped
from .fast_decode import FastDecoder, PrefillCache, unsupported_reason
from .invariance import CANDIDATES, measure_row_multiple
from .kv_slots import KVSlots, SlotStep, make_slot_cache
from .metrics import EngineMetrics
from .sampling import SequenceSampler
from .submit import TokenStream, check_generate, check_prompt_logprobs
from .types import PromptLogprob, SamplingParams, TokenEvent

if TYPE_CHECKING:
    from reference_server.model.loader import LoadedModel

log = logging.getLogger(__name__)

# Lowest logprob reported (JSON has no -inf; OpenAI uses -9999.0 for impossible tokens).
MIN_LOGPROB = -9999.0
# On CPU, models below this many parameters run their forward passes on one intra-op thread: their
# matrices are too small for a thread split to pay, and on a shared machine an OpenMP team's
# spin-waiting threads get descheduled, stalling every step (10x slower decode measured on 2 busy cores).
_SMALL_MODEL_PARAMS = 50_000_000

_KV = list[tuple[torch.Tensor, torch.Tensor]]


class _Sequence:
    """One request: shared between the event loop (queue, cancelled) and the worker (the rest)."""

    def __init__(
        self,
        seq_id: int,
        prompt_ids: list[int],
        params: SamplingParams,
        sampler: SequenceSampler,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.seq_id = seq_id
        self.prompt_ids = prompt_ids
        self.params = params
        self.sampler = sampler
        self.loop = loop
        self.queue: asyncio.Queue[TokenEvent | BaseException] = asyncio.Queue()
        self.cancelled = False  # set by the consumer side, read by the worker
        self.done = False  # worker side: final event or error delivered
        self.generated = 0
        self.last_token = -1


class _TokenStream(TokenStream):
    """The async iterator returned by `generate()`; closing it cancels the sequence."""

    def __init__(self, engine: BatchingEngine, seq: _Sequence) -> None:
        super().__init__(seq.queue)
        self._engine = engine
        self._seq = seq

    def _on_cancel(self) -> None:
        self._seq.cancelled = True
        self._engine._wake.set()


class BatchingEngine:
    """Continuous-batching engine implementing `reference_server.engine.types.Engine`.

    Events: one `TokenEvent` per sampled token; the last one has `finish_reason` set.
    `finish_reason="stop"` means an EOS token was sampled (and `ignore_eos` is false): that final
    event's `token_id` IS the EOS id (with its logprob) and the serving layer must not print its
    text. `finish_reason="length"` is set on the token that reaches `max_new_tokens`, or that fills
    the context window (prompt + generated == context_length). Reported logprobs are those of the
    processed distribution (after logit_bias and penalties, before temperature/top-k/top-p), see
    `sampling.py`.

    `generate()` must be called from a coroutine (it binds to the running loop). It raises, at
    once, `ValueError` for an empty prompt, a prompt with no room left in the context window, or
    `max_new_tokens < 1`; `EngineStopped` if the engine is not running; `EngineOverloaded` if
    `max_queue` sequences are already waiting. A stream whose sequence is interrupted by `stop()`
    raises `EngineStopped`; by a failed forward pass, `EngineFailure`.
    """

    def __init__(
        self,
        model: Any,
        *,
        eos_token_ids: frozenset[int],
        context_length: int,
        model_id: str,
        max_batch: int = 32,
        max_queue: int = 256,
        batch_invariant: bool | None = None,
        prefill_token_budget: int = 4096,
        cpu_threads: int | None = None,
        fast_decode: bool = True,
        cuda_graphs: bool | None = None,
        compile_pieces: bool | None = None,
        batched_prefill: bool | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 0:
            raise ValueError("max_batch must be >= 1 and max_queue >= 0")
        self.model = model
        self.model_id = model_id
        self.model_name = model_id
        self.context_length = int(context_length)
        self.eos_token_ids = frozenset(int(t) for t in eos_token_ids)
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.prefill_token_budget = prefill_token_budget
        # Decode steps through `fast_decode.FastDecoder` when it matches the model (checked at start).
        self.fast_decode = fast_decode
        self._fast: FastDecoder | None = None
        param = next(model.parameters())
        self._device: torch.device = param.device
        self.device = str(param.device)
        self.dtype = str(param.dtype).removeprefix("torch.")
        config = getattr(model, "config", None)
        text_config = (
            config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
        )
        self.vocab_size = int(
            getattr(text_config, "vocab_size", 0) or model.get_output_embeddings().weight.shape[0]
        )
        if cpu_threads is None and self._device.type == "cpu":
            n_params = sum(p.numel() for p in model.parameters())
            cpu_threads = 1 if n_params < _SMALL_MODEL_PARAMS else None
        # Intra-op threads the worker runs torch with (None: leave torch's setting alone).
        self.cpu_threads = cpu_threads if cpu_threads and cpu_threads > 0 else None
        if batch_invariant is None:
            batch_invariant = self._device.type == "cpu"
        self.batch_invariant = bool(batch_invariant) and enable_padding_invariant_attention(model)
        # Decode batches are padded to a multiple of this many rows; measured when the worker starts.
        widest = CANDIDATES[-1] if self.batch_invariant else 1
        self._row_multiple = widest
        self._slot_count = -(-max_batch // widest) * widest
        # Decode steps as CUDA graphs (default: on CUDA without invariance; forcing it on a CPU runs
        # the same bucket logic without graphs, for tests), with fused projections; compiled pieces
        # need Triton, so CUDA only.
        on_gpu = self._device.type == "cuda"
        self.cuda_graphs = (on_gpu if cuda_graphs is None else cuda_graphs) and fast_decode and not self.batch_invariant
        if compile_pieces is None:
            compile_pieces = self.cuda_graphs and on_gpu and _triton_available()
        self.compile_pieces = bool(compile_pieces) and self.cuda_graphs
        self._graphs: DecodeGraphs | None = None
        # Prompts admitted together prefilled in one forward pass (right-padded) on the fast path;
        # not in batch-invariant mode, where each prompt's numbers must not depend on the others.
        self.batched_prefill = batched_prefill is not False and fast_decode and not self.batch_invariant
        if self.cuda_graphs:
            self._slot_count = rows_bucket(max_batch)
        forward_params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in forward_params else "past_key_values"
        self._logits_to_keep = "logits_to_keep" in forward_params
        model.eval()

        self._ids = itertools.count(1)
        self._waiting: collections.deque[_Sequence] = collections.deque()
        # Side jobs for the worker: (run, fail) pairs.
        self._jobs: collections.deque[tuple[Callable[[], None], Callable[[BaseException], None]]] = (
            collections.deque()
        )
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._stopping = False
        # Worker-only batch state, one entry per slot: slot b holds keys [0:lengths[b]] of rows[b]; a
        # None row is a free slot, run as an inert filler when it lies below the decode width.
        # With graphs, room for 256 positions from the start: every regrowth of the buffers means
        # capturing the graphs again.
        self._kv = KVSlots(self._slot_count, self.context_length, 256 if self.cuda_graphs else 64)
        self._cache: Any = make_slot_cache(self._kv)
        self._rows: list[_Sequence | None] = []
        self._lengths: list[int] = []
        self._tokens: list[int] = []  # next input token per row
        self._reset_batch()
        # Counters (written by the worker only).
        self._generated_tokens = 0
        self._prompt_tokens = 0
        self._prefills = 0
        self._decode_steps = 0
        self._decode_rows = 0
        self._padded_rows = 0  # rows computed, fillers included
        self._completed = 0
        self._cancelled = 0
        self._failed = 0

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, **kw: Any) -> BatchingEngine:
        return cls(
            loaded.model,
            eos_token_ids=frozenset(loaded.eos_token_ids),
            context_length=loaded.context_length,
            model_id=loaded.model_id,
            **kw,
        )

    # ------------------------------------------------------------------ public API

    async def start(self) -> None:
        if self._running:
            return
        self._stopping = False
        self._running = True
        self._wake.clear()
        self._thread = threading.Thread(target=self._worker, name=f"engine-{self.model_id}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._running = False
        self._stopping = True
        self._wake.set()
        thread, self._thread = self._thread, None
        await asyncio.to_thread(thread.join)

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[TokenEvent]:
        if not self._running:
            raise EngineStopped("engine is not running")
        prompt = check_generate(prompt_ids, params, self.context_length)
        if len(self._waiting) >= self.max_queue:
            self._purge_cancelled_waiting()
            if len(self._waiting) >= self.max_queue:
                raise EngineOverloaded(f"{len(self._waiting)} requests already waiting", retry_after=1.0)
        loop = asyncio.get_running_loop()
        sampler = SequenceSampler(params, self.vocab_size, self._device)
        seq = _Sequence(next(self._ids), prompt, params, sampler, loop)
        self._waiting.append(seq)
        self._wake.set()
        return _TokenStream(self, seq)

    async def prompt_logprobs(self, prompt_ids: list[int], top_logprobs: int) -> list[PromptLogprob]:
        ids = check_prompt_logprobs(prompt_ids, self.context_length)
        if not ids:
            return []
        return await self._submit(lambda: self._prompt_logprobs(ids, top_logprobs))

    def metrics(self) -> EngineMetrics:
        running = sum(1 for r in self._rows if r is not None)
        return EngineMetrics(
            running=running,
            waiting=len(self._waiting),
            max_batch=self.max_batch,
            max_queue=self.max_queue,
            generated_tokens=self._generated_tokens,
            prompt_tokens=self._prompt_tokens,
            forward_passes=self._prefills + self._decode_steps,
            prefills=self._prefills,
            decode_steps=self._decode_steps,
            average_batch_size=self._decode_rows / self._decode_steps if self._decode_steps else 0.0,
            requests_completed=self._completed,
            requests_cancelled=self._cancelled,
            requests_failed=self._failed,
        )

    # ------------------------------------------------------------------ helpers (any thread)

    def _purge_cancelled_waiting(self) -> None:
        for seq in list(self._waiting):
            if seq.cancelled:
                try:
                    self._waiting.remove(seq)
                except ValueError:  # the worker took it meanwhile
                    continue

    async def _submit(self, fn: Callable[[], Any]) -> Any:
        if not self._running:
            raise EngineStopped("engine is not running")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def job() -> None:
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                loop.call_soon_threadsafe(_set_exception, fut, exc)
            else:
                loop.call_soon_threadsafe(_set_result, fut, result)

        def fail(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_set_exception, fut, exc)

        self._jobs.append((job, fail))
        self._wake.set()
        return await fut

    # ------------------------------------------------------------------ worker thread

    def _worker(self) -> None:
        previous_threads = torch.get_num_threads()
        if self.cpu_threads is not None:
            torch.set_num_threads(self.cpu_threads)
        try:
            with torch.inference_mode():
                self._prepare()
                while True:
                    self._wake.clear()
                    if self._stopping:
                        break
                    busy = self._iteration()
                    if not busy:
                        self._wake.wait()
        except BaseException:  # pragma: no cover - a bug; do not leave consumers hanging
            log.exception("engine worker crashed")
        finally:
            self._running = False
            self._shutdown()
            if self.cpu_threads is not None:
                torch.set_num_threads(previous_threads)

    def _prepare(self) -> None:
        """Start-up measurements, on the thread (and with the torch threads) that runs the steps."""
        if self.batch_invariant:
            self._row_multiple = measure_row_multiple(self.model, self._slot_count)
            log.info("decode batches padded to multiples of %d rows", self._row_multiple)
        self._fast = self._check_fast_decode()
        if self.batched_prefill and not self._check_batched_prefill():
            self.batched_prefill = False
        if self._fast is not None and self.cuda_graphs:
            self._graphs = self._decode_graphs(self._kv, self._cache, self._slot_count)
            if self._device.type == "cuda":
                self._capture_graphs()
        log.info("decode steps: %s", self._decode_path(self._fast))

    def _capture_graphs(self) -> None:
        """Capture the graphs of every batch size for the first buffers at start-up (a second or so)."""
        assert self._graphs is not None
        started = time.perf_counter()
        try:
            kv, _ = self._prefill_kv([0])  # allocates the buffers with the model's key/value shapes
            self._kv.store(0, kv)
            count = self._graphs.capture_all()
        except Exception:  # noqa: BLE001
            log.warning("capturing decode graphs failed; decoding without CUDA graphs", exc_info=True)
            self._graphs = None
            self.cuda_graphs = False
            return
        log.info("captured %d decode graphs in %.1f s", count, time.perf_counter() - started)

    def _decode_graphs(self, slots: KVSlots, cache: Any, rows: int) -> DecodeGraphs:
        assert self._fast is not None
        on_gpu = self._device.type == "cuda"
        capture = CudaGraphCapture(self._device) if on_gpu else eager_capture
        dtype = next(self.model.parameters()).dtype if on_gpu else None  # additive mask, built once per step
        return DecodeGraphs(self._fast, slots, cache, self._device, rows, capture, dtype)

    def _shutdown(self) -> None:
        err = EngineStopped("engine stopped")
        pending: list[tuple[_Sequence, TokenEvent | BaseException]] = []
        for seq in self._rows:
            if seq is not None and not seq.done:
                seq.done = True
                self._failed += 1
                pending.append((seq, err))
        while self._waiting:
            seq = self._waiting.popleft()
            seq.done = True
            self._failed += 1
            pending.append((seq, err))
        self._deliver(pending)
        while self._jobs:
            _, fail = self._jobs.popleft()
            fail(err)
        self._reset_batch(release=True)

    def _reset_batch(self, release: bool = False) -> None:
        n = self._slot_count
        self._rows, self._lengths, self._tokens = [None] * n, [0] * n, [0] * n
        if release:
            self._kv.release()

    def _iteration(self) -> bool:
        while self._jobs:
            run, _ = self._jobs.popleft()
            run()
        events: list[tuple[_Sequence, TokenEvent | BaseException]] = []
        self._free_finished()
        self._admit(events)
        self._compact()
        if any(r is not None for r in self._rows):
            try:
                self._decode_step(events)
            except Exception as exc:  # noqa: BLE001 - e.g. OOM: fail this batch, keep serving
                log.exception("decode step failed")
                err = EngineFailure(f"forward pass failed: {exc}")
                for seq in self._rows:
                    if seq is not None and not seq.done:
                        seq.done = True
                        self._failed += 1
                        events.append((seq, err))
                self._reset_batch(release=True)
        self._deliver(events)
        return bool(self._waiting or self._jobs or any(r is not None for r in self._rows))

    def _free_finished(self) -> None:
        for i, r in enumerate(self._rows):
            if r is not None and (r.cancelled or r.done):
                if not r.done:
                    r.done = True
                    self._cancelled += 1
                self._rows[i] = None

    def _admit(self, events: list[tuple[_Sequence, TokenEvent | BaseException]]) -> None:
        """Prefill waiting sequences into free slots (up to `max_batch` running, within the token budget)."""
        live = sum(1 for r in self._rows if r is not None)
        budget = self.prefill_token_budget
        chosen: list[_Sequence] = []
        while self._waiting and live + len(chosen) < self.max_batch:
            seq = self._waiting[0]
            if seq.cancelled:
                self._waiting.popleft()
                self._cancelled += 1
                continue
            if chosen and len(seq.prompt_ids) > budget:
                break
            self._waiting.popleft()
            budget -= len(seq.prompt_ids)
            chosen.append(seq)
        for group in self._prefill_groups(chosen):
            try:
                prefilled = self._prefill(group)
                slots = []
                for seq, (kv, event) in zip(group, prefilled, strict=True):
                    slot = -1
                    if event.finish_reason is None:
                        slot = self._rows.index(None)
                        self._kv.store(slot, kv)
                        self._rows[slot] = seq  # taken; the bookkeeping below completes it
                    slots.append(slot)
            except Exception as exc:  # noqa: BLE001
                log.exception("prefill failed")
                for seq in group:
                    seq.done = True
                    self._failed += 1
                    events.append((seq, EngineFailure(f"prefill failed: {exc}")))
                self._rows = [None if r is not None and r in group else r for r in self._rows]
                continue
            for seq, (_, event), slot in zip(group, prefilled, slots, strict=True):
                events.append((seq, event))
                if slot >= 0:
                    self._lengths[slot] = len(seq.prompt_ids)
                    self._tokens[slot] = seq.last_token

    def _prefill_groups(self, seqs: list[_Sequence]) -> list[list[_Sequence]]:
        """Prompts prefilled together: one each, or with batched prefill runs of similar lengths whose
        padded size stays within the prefill token budget."""
        if not (self.batched_prefill and self._fast is not None) or len(seqs) < 2:
            return [[s] for s in seqs]
        groups: list[list[_Sequence]] = []
        for seq in sorted(seqs, key=lambda s: len(s.prompt_ids)):
            group = groups[-1] if groups else None
            if group is not None and (len(group) + 1) * len(seq.prompt_ids) <= self.prefill_token_budget:
                group.append(seq)
            else:
                groups.append([seq])
        return groups

    def _compact(self) -> None:
        """Move rows above the smallest possible decode width into free slots below it."""
        live = [i for i, r in enumerate(self._rows) if r is not None]
        if not live:
            return
        m = self._row_multiple
        target = -(-len(live) // m) * m
        if live[-1] < target:
            return
        free = [i for i in range(target) if self._rows[i] is None]
        for src, dst in zip([i for i in live if i >= target], free, strict=False):
            self._kv.move(src, dst, self._lengths[src])
            self._rows[dst], self._rows[src] = self._rows[src], None
            self._lengths[dst], self._tokens[dst] = self._lengths[src], self._tokens[src]

    def _forward(self, input_ids: torch.Tensor, cache: Any, **kw: Any) -> torch.Tensor:
        kw[self._cache_kw] = cache
        out = self.model(input_ids=input_ids, use_cache=True, **kw)
        return out.logits[:, -1, :].float()

    def _prefill_kv(self, prompt_ids: list[int], fast: bool = True) -> tuple[_KV, torch.Tensor]:
        """The prompt's KV cache and last-position logits, computed alone (no padding)."""
        from transformers import DynamicCache

        ids = torch.tensor([prompt_ids], dtype=torch.long, device=self._device)
        if fast and self._fast is not None:
            collected = PrefillCache()
            positions = torch.arange(len(prompt_ids), device=self._device)[None, :]
            logits = self._fast(ids, positions, collected, None)
            return collected.layers, logits
        cache = DynamicCache()
        extra: dict[str, Any] = {"logits_to_keep": 1} if self._logits_to_keep else {}
        logits = self._forward(ids, cache, **extra)
        return _cache_tensors(cache), logits

    def _prefill_kv_batch(self, prompts: list[list[int]]) -> tuple[list[_KV], torch.Tensor]:
        """Several prompts in one fast-path pass, right-padded: each one's KV cache, and logits [n, vocab]."""
        assert self._fast is not None
        lengths = [len(p) for p in prompts]
        width = max(lengths)
        ids = torch.tensor([p + [0] * (width - len(p)) for p in prompts], dtype=torch.long, device=self._device)
        positions = torch.arange(width, device=self._device)[None, :].expand(len(prompts), width)
        last = torch.tensor([n - 1 for n in lengths], device=self._device)
        collected = PrefillCache()
        logits = self._fast(ids, positions, collected, None, last)
        kvs = [[(k[i : i + 1, :, :n], v[i : i + 1, :, :n]) for k, v in collected.layers] for i, n in enumerate(lengths)]
        return kvs, logits

    def _prefill(self, seqs: list[_Sequence]) -> list[tuple[_KV, TokenEvent]]:
        """Prefill `seqs` (one, or a group for batched prefill) and sample each one's first token."""
        if len(seqs) == 1:
            kv, logits = self._prefill_kv(seqs[0].prompt_ids)
            kvs = [kv]
        else:
            kvs, logits = self._prefill_kv_batch([s.prompt_ids for s in seqs])
        self._prefills += len(seqs)
        self._prompt_tokens += sum(len(s.prompt_ids) for s in seqs)
        return list(zip(kvs, self._sample(seqs, logits), strict=True))

    def _decode_forward(
        self, cache: Any, tokens: list[int], lengths: list[int | None], visible: int, fast: bool
    ) -> torch.Tensor:
        """One decode step over slot rows `[0, len(tokens))`: float32 logits, one row per slot.

        `lengths[b]` is how many keys row b holds before the step (None: a filler row, which
        writes at position 0 of its own free slot and whose logits are never read).
        """
        width = len(tokens)
        positions = torch.tensor([n or 0 for n in lengths], dtype=torch.long, device=self._device)
        input_ids = torch.tensor(tokens, dtype=torch.long, device=self._device)[:, None]
        cache.step = SlotStep(width, positions, visible)
        if self.batch_invariant:
            spans = [(n + 1, bucket_end(n + 1, self.context_length)) if n is not None else None for n in lengths]
            with decode_rows(spans):
                if fast and self._fast is not None:
                    return self._fast(input_ids, positions[:, None], cache, None)
                return self._forward(input_ids, cache, position_ids=positions[:, None])
        mask = torch.arange(visible, device=self._device)[None, :] <= positions[:, None]
        if fast and self._fast is not None:
            return self._fast(input_ids, positions[:, None], cache, mask[:, None, None, :])
        return self._forward(input_ids, cache, position_ids=positions[:, None], attention_mask=mask.long())

    def _graph_forward(self, live: list[int]) -> tuple[int, torch.Tensor] | None:
        """(width, logits) of a decode step through the CUDA graphs (their greedy head in
        `graphs.last_head`); None if they cannot run it."""
        graphs = self._graphs
        if graphs is None:
            return None
        width = graphs.rows_for(live[-1] + 1)
        visible = graphs.keys_for(max(self._lengths[i] for i in live) + 1)
        self._kv.ensure_capacity(visible)
        positions = [n if r is not None else 0 for r, n in zip(self._rows[:width], self._lengths, strict=False)]
        try:
            return width, graphs(self._tokens[:width], positions, visible)
        except Exception:  # noqa: BLE001 - a capture that fails: decode without graphs from now on
            log.warning("decode graph failed; decoding without CUDA graphs", exc_info=True)
            self._graphs = None
            self.cuda_graphs = False
            return None

    def _decode_step(self, events: list[tuple[_Sequence, TokenEvent | BaseException]]) -> None:
        live = [i for i, r in enumerate(self._rows) if r is not None]
        seqs: list[_Sequence] = [self._rows[i] for i in live]  # type: ignore[misc]  # live rows are set
        graphed = self._graph_forward(live)
        head: list[list[float]] | None = None
        if graphed is not None:
            width, logits = graphed
            if self._graphs is not None and self._graphs.last_head is not None and all(
                s.sampler.greedy and not s.sampler.needs_processing and not s.params.top_logprobs for s in seqs
            ):
                rows = self._graphs.last_head.tolist()
                head = [rows[i] for i in live]
        else:
            m = self._row_multiple
            width = -(-(live[-1] + 1) // m) * m
            lengths: list[int | None] = [
                n if r is not None else None for r, n in zip(self._rows[:width], self._lengths, strict=False)
            ]
            visible = max(self._lengths[i] for i in live) + 1
            if self.batch_invariant:  # rows attend over their whole bucket (masked past their length)
                visible = bucket_end(visible, self.context_length)
            self._kv.ensure_capacity(visible)
            logits = self._decode_forward(self._cache, self._tokens[:width], lengths, visible, fast=True)
        self._decode_steps += 1
        self._decode_rows += len(live)
        self._padded_rows += width
        for i in live:
            self._lengths[i] += 1
        if len(live) != width and head is None:
            logits = logits.index_select(0, torch.tensor(live, device=logits.device))
        events_out = self._sample(seqs, logits) if head is None else self._emit(seqs, head)
        for i, seq, event in zip(live, seqs, events_out, strict=True):
            self._tokens[i] = event.token_id
            events.append((seq, event))

    def _same(self, reference: torch.Tensor, candidate: torch.Tensor) -> bool:
        """Bit-identical in batch-invariant mode; otherwise within float noise of the values' scale
        (bf16 rounds to 8 bits: one-ulp differences per operation add up over the layers)."""
        if reference.shape != candidate.shape:
            return False
        if self.batch_invariant:
            return torch.equal(reference, candidate)
        tol = 5e-2 if torch.bfloat16 in (reference.dtype, self.model.dtype) else 2e-2
        scale = max(1.0, reference.float().abs().max().item())
        return (reference.float() - candidate.float()).abs().max().item() <= tol * scale

    def _check_fast_decode(self) -> FastDecoder | None:
        """The fast decoder if it reproduces the model's own decode step here, else None.

        Two prompts prefilled each way (logits, keys and values), then one decode step each way
        over the same slots with a filler row: bit-identical in batch-invariant mode, within float
        noise otherwise. With CUDA graphs on, the step is also run through a graph (with the fused,
        compiled decoder); if that differs or fails, graphs are turned off and the plain fast path
        is checked instead.
        """
        if not self.fast_decode or unsupported_reason(self.model) is not None:
            return None
        gpu_options = self.cuda_graphs
        try:
            fast = FastDecoder(self.model, fuse=gpu_options, compile_pieces=self.compile_pieces)
        except Exception:  # noqa: BLE001
            log.warning("fast decoder unavailable; decoding through the model's forward", exc_info=True)
            return None
        self._fast = fast
        slots = KVSlots(max(self._row_multiple, 3), self.context_length)
        cache = make_slot_cache(slots)
        prompts = [[(7 * i + 3) % self.vocab_size for i in range(n)] for n in (5, 2)]
        try:
            kvs = []
            for p in prompts:
                kv, logits = self._prefill_kv(p, fast=False)
                fast_kv, fast_logits = self._prefill_kv(p, fast=True)
                pairs = [(logits, fast_logits)]
                pairs += [(a, b) for x, y in zip(kv, fast_kv, strict=True) for a, b in zip(x, y, strict=True)]
                if not all(self._same(a, b) for a, b in pairs):
                    worst = max((a.float() - b.float()).abs().max().item() for a, b in pairs)
                    raise ValueError(f"fast prefill differs from the model's forward (by up to {worst:.3g})")
                kvs.append(kv)
            width = -(-3 // self._row_multiple) * self._row_multiple
            tokens = [1, 2] + [0] * (width - 2)
            lengths: list[int | None] = [5, 2] + [None] * (width - 2)

            def stored(visible: int) -> int:
                for slot, kv in enumerate(kvs):
                    slots.store(slot, kv)
                slots.ensure_capacity(visible)
                return visible

            results = []
            for use_fast in (False, True):
                visible = stored(bucket_end(6, self.context_length) if self.batch_invariant else 6)
                results.append(self._decode_forward(cache, tokens, lengths, visible, fast=use_fast)[:2])
            if gpu_options:
                graphs = self._decode_graphs(slots, cache, slots.slots)
                visible = stored(graphs.keys_for(6))
                results.append(graphs(tokens, [5, 2] + [0] * (width - 2), visible)[:2].clone())
        except Exception:  # noqa: BLE001 - any mismatch in structure: use the model itself
            log.warning("fast decode check failed; decoding through the model's forward", exc_info=True)
            return self._without_gpu_options() if gpu_options else self._no_fast_path()
        if not all(self._same(results[0], r) for r in results[1:]):
            diffs = ", ".join(f"{(results[0] - r).abs().max().item():.3g}" for r in results[1:])
            log.warning("fast decode (%s) differs from the model's forward here (largest logit differences %s, "
                        "largest logit %.3g); not used", self._decode_path(fast), diffs, results[0].abs().max().item())
            return self._without_gpu_options() if gpu_options else self._no_fast_path()
        return fast

    def _decode_path(self, fast: FastDecoder | None) -> str:
        if fast is None:
            return "model forward"
        extras = [name for name, on in (("fused", fast.fused), ("compiled pieces", fast.compiled),
                                        ("CUDA graphs", self.cuda_graphs)) if on]
        return "fast path" + (f" with {', '.join(extras)}" if extras else "")

    def _check_batched_prefill(self) -> bool:
        """Whether prompts prefilled together give each one's logits and keys as prefilled alone."""
        if self._fast is None:
            return False
        prompts = [[(5 * i + 1) % self.vocab_size for i in range(n)] for n in (7, 3, 5)]
        try:
            kvs, logits = self._prefill_kv_batch(prompts)
            for i, p in enumerate(prompts):
                kv, alone = self._prefill_kv(p)
                pairs = [(alone[0], logits[i])]
                pairs += [(a, b) for x, y in zip(kv, kvs[i], strict=True) for a, b in zip(x, y, strict=True)]
                if not all(self._same(a, b) for a, b in pairs):
                    log.warning("batched prefill differs from prefilling alone here; prompts are prefilled one by one")
                    return False
        except Exception:  # noqa: BLE001
            log.warning("batched prefill check failed; prompts are prefilled one by one", exc_info=True)
            return False
        return True

    def _no_fast_path(self) -> FastDecoder | None:
        self._fast = None
        return self._fast

    def _without_gpu_options(self) -> FastDecoder | None:
        """Check again with one option less: compiled pieces go first, then graphs (and fused projections)."""
        if self.compile_pieces:
            self.compile_pieces = False
        else:
            self.cuda_graphs = False
        return self._check_fast_decode()

    def _emit(self, seqs: list[_Sequence], head: list[list[float]]) -> list[TokenEvent]:
        """Events from the greedy choices a decode graph made (`[token id, logprob]` per sequence)."""
        return self._events(seqs, [int(t) for t, _ in head], [lp for _, lp in head], [], [])

    def _sample(self, seqs: list[_Sequence], logits: torch.Tensor) -> list[TokenEvent]:
        """Sample one token for each sequence from its row of float32 logits; update its state."""
        processed = logits
        if any(s.sampler.needs_processing for s in seqs):
            processed = logits.clone()
            for i, s in enumerate(seqs):
                if s.sampler.needs_processing:
                    processed[i] = s.sampler.process(processed[i])
        logprobs = torch.log_softmax(processed, dim=-1)
        tokens = processed.argmax(dim=-1)
        if any(not s.sampler.greedy for s in seqs):
            for i, s in enumerate(seqs):
                if not s.sampler.greedy:
                    tokens[i] = s.sampler.sample(processed[i])
        token_lp = logprobs.gather(1, tokens[:, None])[:, 0].tolist()
        k = min(max(s.params.top_logprobs for s in seqs), logprobs.shape[-1])
        top_v: list[list[float]] = []
        top_i: list[list[int]] = []
        if k > 0:
            top = torch.topk(logprobs, k, dim=-1)
            top_v, top_i = top.values.tolist(), top.indices.tolist()
        return self._events(seqs, tokens.tolist(), token_lp, top_v, top_i)

    def _events(
        self,
        seqs: list[_Sequence],
        tokens: list[int],
        token_lp: list[float],
        top_v: list[list[float]],
        top_i: list[list[int]],
    ) -> list[TokenEvent]:
        """Record each sequence's chosen token and make its event (finish reason, top logprobs)."""
        out: list[TokenEvent] = []
        for i, (s, tok) in enumerate(zip(seqs, tokens, strict=False)):
            s.sampler.record(tok)
            s.generated += 1
            s.last_token = tok
            p = s.params
            finish: Any = None
            if tok in self.eos_token_ids and not p.ignore_eos:
                finish = "stop"
            elif s.generated >= p.max_new_tokens or len(s.prompt_ids) + s.generated >= self.context_length:
                finish = "length"
            tops = (
                [
                    (t, max(v, MIN_LOGPROB))
                    for t, v in zip(top_i[i][: p.top_logprobs], top_v[i][: p.top_logprobs], strict=False)
                ]
                if p.top_logprobs
                else []
            )
            out.append(TokenEvent(tok, max(token_lp[i], MIN_LOGPROB), tops, finish))
            self._generated_tokens += 1
            if finish is not None:
                s.done = True
                self._completed += 1
        return out

    def _prompt_logprobs(self, ids: list[int], k: int) -> list[PromptLogprob]:
        input_ids = torch.tensor([ids], dtype=torch.long, device=self._device)
        logits = self.model(input_ids=input_ids, use_cache=False).logits[0, :-1].float()
        self._prefills += 1
        logprobs = torch.log_softmax(logits, dim=-1)
        target = torch.tensor(ids[1:], dtype=torch.long, device=self._device)
        token_lp = logprobs.gather(1, target[:, None])[:, 0].tolist()
        k = min(k, logprobs.shape[-1])
        top_v: list[list[float]] = []
        top_i: list[list[int]] = []
        if k > 0 and len(ids) > 1:
            top = torch.topk(logprobs, k, dim=-1)
            top_v, top_i = top.values.tolist(), top.indices.tolist()
        result = [PromptLogprob(ids[0], None, [])]
        for pos in range(1, len(ids)):
            tops = (
                [(t, max(v, MIN_LOGPROB)) for t, v in zip(top_i[pos - 1], top_v[pos - 1], strict=False)]
                if k > 0
                else []
            )
            result.append(PromptLogprob(ids[pos], max(token_lp[pos - 1], MIN_LOGPROB), tops))
        return result

    def _deliver(self, items: list[tuple[_Sequence, TokenEvent | BaseException]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Sequence, TokenEvent | BaseException]]] = {}
        for seq, item in items:
            by_loop.setdefault(seq.loop, []).append((seq, item))
        for loop, batch in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed consumer loop: nobody is listening
                loop.call_soon_threadsafe(_put_all, batch)


def _put_all(batch: list[tuple[_Sequence, TokenEvent | BaseException]]) -> None:
    for seq, item in batch:
        seq.queue.put_nowait(item)


def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _cache_tensors(cache: Any) -> _KV:
    """Per-layer (keys, values) of a DynamicCache, each [batch, kv_heads, seq, head_dim]."""
    if hasattr(cache, "layers"):  # transformers >= 4.56
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=False))  # older transformers


__all__ = ["MIN_LOGPROB", "BatchingEngine"]
