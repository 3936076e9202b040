"""The batching engine in a process of its own, so model execution never waits for the HTTP event loop.

In one process the engine thread and the asyncio event loop share the GIL: every token's Python
work in the loop (framing, detokenizing, socket writes) runs serially with the engine's own Python
work between kernels, and the engine thread stalls each time it hands a batch of tokens over. With
the engine in a child process both run at once, on separate cores.

The child loads the model itself (spawned, never forked, so no torch/OpenMP/CUDA state is copied)
and runs `BatchingEngine`'s iteration loop on its main thread, reading commands from a pipe between
iterations and sending each iteration's token events back as one message. `ProcessEngine` is the
parent's side: the same `Engine` interface as `BatchingEngine`, with the pipe watched by the event
loop (`add_reader`), so no thread is involved on either side.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .errors import EngineFailure, EngineOverloaded, EngineStopped
from .metrics import EngineMetrics
from .submit import TokenStream, check_generate, check_prompt_logprobs
from .types import PromptLogprob, SamplingParams, TokenEvent

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 600.0  # loading a large model from disk can take minutes


@dataclass(frozen=True)
class ModelSpec:
    """What the child needs to load the same model the parent serves."""

    model: str  # "tiny" or a model folder
    device: str
    dtype: str


# ---------------------------------------------------------------------------------------------- child


def _child_main(conn: Connection, spec: ModelSpec, engine_kw: dict[str, Any]) -> None:
    import signal

    import torch

    # Ctrl-C reaches the whole process group: the parent drains its requests, then stops this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from reference_server.model.loader import load_model

    from .batching import BatchingEngine, _Sequence
    from .sampling import SequenceSampler

    try:
        loaded = load_model(spec.model, device=spec.device, dtype=spec.dtype)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails its start
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return

    class PipeEngine(BatchingEngine):
        def _deliver(self, items: list[tuple[Any, TokenEvent | BaseException]]) -> None:
            out: list[tuple[int, TokenEvent | str]] = []
            for seq, item in items:
                if isinstance(item, BaseException):
                    out.append((seq.seq_id, f"{type(item).__name__}: {item}"))
                else:
                    out.append((seq.seq_id, item))
                if isinstance(item, BaseException) or item.finish_reason is not None:
                    sequences.pop(seq.seq_id, None)
            conn.send(("events", out, self.metrics()))

    engine = PipeEngine.from_loaded(loaded, **engine_kw)
    sequences: dict[int, Any] = {}
    if engine.cpu_threads is not None:
        torch.set_num_threads(engine.cpu_threads)
    with torch.inference_mode():
        engine._prepare()
        engine._running = True
        conn.send(("ready", engine.metrics()))
        busy = False
        while True:
            try:
                timeout: float | None = 0.0 if busy else None
                while conn.poll(timeout):
                    timeout = 0.0
                    msg = conn.recv()
                    kind = msg[0]
                    if kind == "gen":
                        _, seq_id, prompt, params = msg
                        sampler = SequenceSampler(params, engine.vocab_size, engine._device)
                        seq = _Sequence(seq_id, prompt, params, sampler, None)  # type: ignore[arg-type]
                        sequences[seq_id] = seq
                        engine._waiting.append(seq)
                    elif kind == "cancel":
                        seq = sequences.pop(msg[1], None)
                        if seq is not None:
                            seq.cancelled = True
                    elif kind == "logprobs":
                        _, job_id, ids, k = msg
                        try:
                            conn.send(("result", job_id, engine._prompt_logprobs(ids, k)))
                        except Exception as exc:  # noqa: BLE001 - the request fails, not the engine
                            conn.send(("error", job_id, f"{type(exc).__name__}: {exc}"))
                    elif kind == "stop":
                        engine._shutdown()
                        return
            except (EOFError, OSError):  # the parent went away
                return
            busy = engine._iteration()


# --------------------------------------------------------------------------------------------- parent


class _RemoteStream(TokenStream):
    def __init__(self, engine: ProcessEngine, seq_id: int) -> None:
        super().__init__(asyncio.Queue())
        self._engine = engine
        self._id = seq_id
        self.started = False

    def _on_cancel(self) -> None:
        self._engine._cancel(self._id)


class ProcessEngine:
    """`Engine` whose `BatchingEngine` runs in a spawned child process (see the module docstring)."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        model_id: str,
        context_length: int,
        vocab_size: int | None,
        device: str,
        dtype: str,
        max_batch: int = 32,
        max_queue: int = 256,
        **engine_kw: Any,
    ) -> None:
        """`engine_kw`: further `BatchingEngine` options for the child (e.g. `cuda_graphs`)."""
        self.spec = spec
        self.model_id = self.model_name = model_id
        self.context_length = int(context_length)
        self.vocab_size = vocab_size
        self.device = device
        self.dtype = dtype
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._engine_kw = engine_kw
        self._ids = itertools.count(1)
        self._streams: dict[int, _RemoteStream] = {}
        self._jobs: dict[int, asyncio.Future[list[PromptLogprob]]] = {}
        self._unstarted = 0  # submitted sequences without a first event: the child's queue
        self._metrics: EngineMetrics | None = None
        self._proc: Any = None
        self._conn: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False

    @classmethod
    def from_loaded(cls, loaded: Any, spec: ModelSpec, **kw: Any) -> ProcessEngine:
        config = loaded.config if loaded.config is not None else getattr(loaded.model, "config", None)
        if config is not None and hasattr(config, "get_text_config"):
            config = config.get_text_config()
        vocab = getattr(config, "vocab_size", None) if config is not None else None
        return cls(
            spec,
            model_id=loaded.model_id,
            context_length=loaded.context_length,
            vocab_size=vocab,
            device=loaded.device,
            dtype=loaded.dtype,
            **kw,
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._running:
            return
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        kw = {"max_batch": self.max_batch, "max_queue": self.max_queue, **self._engine_kw}
        self._proc = ctx.Process(target=_child_main, args=(child, self.spec, kw), name="engine", daemon=True)
        self._proc.start()
        child.close()
        ready = await asyncio.wait_for(asyncio.to_thread(_recv_first, parent), _START_TIMEOUT_S)
        if ready[0] != "ready":
            self._proc.join(5)
            raise EngineFailure(f"engine process failed to start: {ready[1]}")
        self._metrics = ready[1]
        self._conn = parent
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(parent.fileno(), self._readable)
        self._running = True

    async def stop(self) -> None:
        if self._conn is None:
            return
        self._running = False
        conn, self._conn = self._conn, None
        if self._loop is not None:
            self._loop.remove_reader(conn.fileno())
        try:
            conn.send(("stop",))
            # The child fails what it still holds and sends those events before exiting.
            while await asyncio.to_thread(conn.poll, 10):
                self._dispatch(conn.recv())
        except (EOFError, OSError):
            pass
        await asyncio.to_thread(self._proc.join, 10)
        if self._proc.is_alive():
            self._proc.kill()
        conn.close()
        self._fail_all(EngineStopped("engine stopped"))

    # ------------------------------------------------------------------ Engine interface

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[TokenEvent]:
        if not self._running or self._conn is None:
            raise EngineStopped("engine is not running")
        prompt = check_generate(prompt_ids, params, self.context_length)
        if self._unstarted >= self.max_queue:
            raise EngineOverloaded(f"{self._unstarted} requests already waiting", retry_after=1.0)
        seq_id = next(self._ids)
        stream = _RemoteStream(self, seq_id)
        self._streams[seq_id] = stream
        self._unstarted += 1
        self._send(("gen", seq_id, prompt, params))
        return stream

    async def prompt_logprobs(self, prompt_ids: list[int], top_logprobs: int) -> list[PromptLogprob]:
        ids = check_prompt_logprobs(prompt_ids, self.context_length)
        if not ids:
            return []
        if not self._running or self._loop is None:
            raise EngineStopped("engine is not running")
        job_id = next(self._ids)
        fut: asyncio.Future[list[PromptLogprob]] = self._loop.create_future()
        self._jobs[job_id] = fut
        self._send(("logprobs", job_id, ids, top_logprobs))
        return await fut

    def metrics(self) -> EngineMetrics:
        m = self._metrics
        if m is None:
            return EngineMetrics(0, 0, self.max_batch, self.max_queue, 0, 0, 0, 0, 0, 0.0, 0, 0, 0)
        return m

    # ------------------------------------------------------------------ pipe

    def _send(self, msg: tuple[Any, ...]) -> None:
        if self._conn is None:
            raise EngineStopped("engine is not running")
        try:
            self._conn.send(msg)
        except (OSError, ValueError) as exc:
            self._lost(exc)
            raise EngineStopped("engine process is gone") from exc

    def _cancel(self, seq_id: int) -> None:
        stream = self._streams.pop(seq_id, None)
        if stream is not None and not stream.started:
            self._unstarted -= 1
        if self._conn is not None and self._running:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(("cancel", seq_id))

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll(0):
                self._dispatch(conn.recv())
        except (EOFError, OSError) as exc:
            self._lost(exc)

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "events":
            _, events, self._metrics = msg
            for seq_id, item in events:
                stream = self._streams.get(seq_id)
                if stream is None:
                    continue  # cancelled meanwhile
                if not stream.started:
                    stream.started = True
                    self._unstarted -= 1
                if isinstance(item, str):
                    name, _, text = item.partition(": ")
                    exc: BaseException = EngineStopped(text) if name == "EngineStopped" else EngineFailure(text)
                    stream.queue.put_nowait(exc)
                    self._streams.pop(seq_id, None)
                else:
                    stream.queue.put_nowait(item)
                    if item.finish_reason is not None:
                        self._streams.pop(seq_id, None)
        elif kind in ("result", "error"):
            fut = self._jobs.pop(msg[1], None)
            if fut is not None and not fut.done():
                if kind == "result":
                    fut.set_result(msg[2])
                else:
                    fut.set_exception(ValueError(msg[2]))

    def _lost(self, exc: BaseException) -> None:
        """The child died or the pipe broke: fail everything in flight; later calls raise EngineStopped."""
        if self._conn is not None:
            log.error("engine process lost: %r", exc)
            if self._loop is not None:
                self._loop.remove_reader(self._conn.fileno())
            self._conn = None
        self._running = False
        self._fail_all(EngineFailure("engine process exited"))

    def _fail_all(self, exc: BaseException) -> None:
        for stream in self._streams.values():
            stream.queue.put_nowait(exc)
        self._streams.clear()
        self._unstarted = 0
        for fut in self._jobs.values():
            if not fut.done():
                fut.set_exception(exc)
        self._jobs.clear()


def _recv_first(conn: Connection) -> tuple[Any, ...]:
    if not conn.poll(_START_TIMEOUT_S):
        return ("failed", "no answer from the engine process")
    try:
        msg: tuple[Any, ...] = conn.recv()
    except EOFError:
        return ("failed", "the engine process exited while loading the model")
    return msg


__all__ = ["ModelSpec", "ProcessEngine"]
