"""`reference-server`: serve a model over the OpenAI-compatible API under one behaviour profile."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from reference_server.config import Limits

API_KEY_ENV = "REFERENCE_SERVER_API_KEY"


class RedactKey(logging.Filter):
    """Replaces the API key wherever it appears in a log record (e.g. a client that put it in a URL)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def _clean(self, value: object) -> object:
        return value.replace(self.key, "[redacted]") if isinstance(value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        with contextlib.suppress(Exception):
            if self.key in record.getMessage():
                record.msg, record.args = self._clean(record.getMessage()), ()
        return True


def install_key_redaction(key: str | None) -> None:
    if not key:
        return
    redact = RedactKey(key)
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "reference_server"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(redact)


def limits_from_args(args: argparse.Namespace) -> Limits:
    return Limits(
        max_body_bytes=args.max_body_bytes,
        max_messages=args.max_messages,
        max_n=args.max_n,
        max_stop_count=args.max_stop_count,
        max_stop_length=args.max_stop_length,
        max_prompts=args.max_prompts,
        max_prompt_tokens=args.max_prompt_tokens,
        max_request_tokens=args.max_request_tokens or None,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reference-server",
        description="Reference OpenAI-compatible server (one model, one behaviour profile).",
    )
    p.add_argument("--model", default="tiny", help="'tiny' (built-in) or a path to a Hugging Face model folder")
    p.add_argument("--profile", default="fireworks", help="built-in profile (fireworks, openai) or a YAML file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed when ready)")
    p.add_argument("--api-key", default=None, help=f"require this Bearer key (default: ${API_KEY_ENV})")
    p.add_argument(
        "--public-docs",
        action="store_true",
        help="with a key set, serve the API description (/openapi.json, /docs, /redoc) without it too "
        "(default: only /health is open)",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    p.add_argument("--max-batch", type=int, default=32, help="sequences decoded together")
    p.add_argument("--max-queue", type=int, default=256, help="sequences waiting for a slot before 429")
    p.add_argument(
        "--engine-process",
        default="on",
        choices=["on", "off"],
        help="run the model in a child process, so decoding never waits for the HTTP event loop (default on; "
        "off: an engine thread in the server process, one process and one copy of the runtime less)",
    )
    p.add_argument(
        "--cuda-graphs",
        default="auto",
        choices=["auto", "off"],
        help="decode steps as CUDA graphs with fused projections (auto: on a CUDA device, when the start-up "
        "check against the model's forward passes)",
    )
    p.add_argument(
        "--compile",
        default="auto",
        choices=["auto", "off"],
        help="torch.compile the element-wise pieces of graphed decode steps (auto: when Triton is installed)",
    )
    limits = p.add_argument_group("request limits (each answered with an OpenAI-shaped 4xx)")
    d = Limits()
    limits.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="request body size (413)")
    limits.add_argument("--max-messages", type=int, default=d.max_messages, help="chat messages per request")
    limits.add_argument("--max-n", type=int, default=d.max_n, help="choices per prompt (n)")
    limits.add_argument("--max-stop-count", type=int, default=d.max_stop_count, help="stop sequences")
    limits.add_argument("--max-stop-length", type=int, default=d.max_stop_length, help="characters per stop")
    limits.add_argument("--max-prompts", type=int, default=d.max_prompts, help="prompts per completions request")
    limits.add_argument(
        "--max-prompt-tokens", type=int, default=d.max_prompt_tokens, help="prompt tokens (default: the context)"
    )
    limits.add_argument(
        "--max-request-tokens",
        type=int,
        default=d.max_request_tokens,
        help="completion tokens per request: choices x max_tokens (0: no limit)",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug", "trace"])
    return p


async def _serve(server: object, host: str, banner: str) -> None:
    import uvicorn

    assert isinstance(server, uvicorn.Server)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.05)
    port = None
    for s in getattr(server, "servers", []):
        for sock in s.sockets:
            port = sock.getsockname()[1]
            break
    print(banner.format(port=port), flush=True)
    await task


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """BatchingEngine keyword arguments from the command line (None: the engine decides)."""
    return {
        "max_batch": args.max_batch,
        "max_queue": args.max_queue,
        "cuda_graphs": None if args.cuda_graphs == "auto" else False,
        "compile_pieces": None if args.compile == "auto" else False,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    logging.basicConfig(level=args.log_level.upper() if args.log_level != "trace" else "DEBUG")

    from conformance.profiles import ProfileError, load_profile

    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        print(f"reference-server: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from reference_server.app import create_app
    from reference_server.config import ServerConfig
    from reference_server.engine.batching import BatchingEngine
    from reference_server.engine.process import ModelSpec, ProcessEngine
    from reference_server.engine.types import Engine
    from reference_server.model.loader import load_model

    with contextlib.suppress(Exception):  # keep stdout/stderr to the log lines and the banner
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    # With the engine in a child process, this one needs the tokenizer and config only.
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, weights=args.engine_process == "off")
    engine: Engine
    options = engine_options(args)
    if args.engine_process == "on":
        spec = ModelSpec(args.model, device=args.device, dtype=args.dtype)
        engine = ProcessEngine.from_loaded(loaded, spec, **options)
    else:
        engine = BatchingEngine.from_loaded(loaded, **options)
    config = ServerConfig.from_loaded(
        loaded, engine, profile, api_key=api_key, public_docs=args.public_docs, limits=limits_from_args(args)
    )
    app = create_app(config)
    # torch and transformers leave hundreds of thousands of long-lived objects: a full collection
    # over them stalls every stream for ~200 ms. They live as long as the process, so take them out
    # of the collector's view once; objects made per request are still collected.
    gc.collect()
    gc.freeze()
    uv_config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on")
    server = uvicorn.Server(uv_config)
    install_key_redaction(api_key)  # after uvicorn configured its log handlers
    host = f"[{args.host}]" if ":" in args.host else args.host
    banner = (
        f"serving {config.model_id} (profile {profile.id}) on http://{host}:{{port}}/v1 "
        f"[{engine.device}, {engine.dtype}]"
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal: let that be a no-op
    # so a requested shutdown exits with status 0.
    with contextlib.suppress(ValueError):  # not in the main thread
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server, host, banner))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
