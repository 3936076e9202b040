"""`python -m bench.gpu_decode`: what each GPU option of the engine buys, in one run.

The engine (no HTTP) decodes greedily at one stream and at `--streams` concurrent streams in each
decode mode, one after the other on the same loaded model:

    forward         the model's own forward (transformers), no fast path
    fast            the fast decoder (same operations, without transformers' per-call machinery)
    graphs          + fused projections, each decode step replayed as a CUDA graph
    graphs+compile  + torch.compile'd element-wise pieces inside the graphs (the server's default)

and, as baselines, transformers' `generate` at batch 1, eager and with its static cache (which
transformers compiles). Batch-1 decode rate = 1 / median inter-token latency; it is printed as a
fraction of the memory-bandwidth limit (device copy bandwidth / weight bytes read per token, both
measured here). Greedy tokens of every mode are compared with the `forward` mode's (bf16 results
differ in the last bits between kernels, so an early divergence on a near tie is possible; it is
reported, not hidden).

    python -m bench.gpu_decode --out bench/results/gpu-decode.json        # ~1B random Llama, cuda
    python -m bench.gpu_decode --device cpu --model PATH --streams 8       # plumbing check on CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

MODES: dict[str, dict[str, Any]] = {
    "forward": {"fast_decode": False, "cuda_graphs": False},
    "fast": {"fast_decode": True, "cuda_graphs": False},
    "graphs": {"fast_decode": True, "cuda_graphs": True, "compile_pieces": False},
    "graphs+compile": {"fast_decode": True, "cuda_graphs": True, "compile_pieces": True},
}


def _log(msg: str) -> None:
    print(f"[gpu_decode {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _mode_result(loaded: Any, mode: str, args: argparse.Namespace, prompts: list[str]) -> dict[str, Any]:
    from bench.engine_direct import engine_run

    kw = dict(MODES[mode])
    if args.device == "cpu":  # graphs on CPU run the bucket logic only; nothing to compile
        kw.pop("compile_pieces", None)
    out: dict[str, Any] = {"options": kw}
    started = time.perf_counter()
    one = engine_run(loaded, prompts[:args.requests_c1], concurrency=1, max_tokens=args.max_tokens,
                     max_batch=args.streams, **kw)
    itl = one.summary()["itl_s"]["p50"]
    out["c1"] = {**one.summary(), "decode_tokens_per_s": 1.0 / itl if itl else None}
    many = engine_run(loaded, [prompts[i % len(prompts)] for i in range(2 * args.streams)],
                      concurrency=args.streams, max_tokens=args.max_tokens, max_batch=args.streams, **kw)
    out[f"c{args.streams}"] = many.summary()
    out["wall_s"] = time.perf_counter() - started
    return out


def _greedy_tokens(loaded: Any, prompts: list[str], max_tokens: int, **kw: Any) -> list[list[int]]:
    import asyncio

    from reference_server.engine.batching import BatchingEngine
    from reference_server.engine.types import SamplingParams

    tok = loaded.tokenizer

    async def main() -> list[list[int]]:
        engine = BatchingEngine.from_loaded(loaded, max_batch=len(prompts), **kw)
        await engine.start()
        try:
            params = SamplingParams(max_new_tokens=max_tokens, temperature=0.0, ignore_eos=True)

            async def one(text: str) -> list[int]:
                return [e.token_id async for e in engine.generate(list(tok(text)["input_ids"]), params)]

            return list(await asyncio.gather(*(one(p) for p in prompts)))
        finally:
            await engine.stop()

    return asyncio.run(main())


def _replay_times(loaded: Any, rows: list[int], keys: int = 256, repeats: int = 100) -> dict[str, float]:
    """Device time of one decode step alone (a graph replay, CUDA events), per rows bucket: what the
    engine's step costs without the host's share (inputs, sampling, delivery)."""
    import torch

    from reference_server.engine.batching import BatchingEngine

    engine = BatchingEngine.from_loaded(loaded, max_batch=max(rows))
    with torch.inference_mode():
        engine._prepare()
    graphs = engine._graphs
    if graphs is None:
        return {}
    out: dict[str, float] = {}
    for r in rows:
        replay = graphs._graphs.get((graphs.rows_for(r), keys))
        if replay is None:
            continue
        for _ in range(5):
            replay()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(repeats):
            replay()
        end.record()
        end.synchronize()
        out[f"rows{r}_keys{keys}_ms"] = start.elapsed_time(end) / repeats
    engine._reset_batch(release=True)
    return out


def _piece_differences(loaded: Any, rows: int = 3) -> dict[str, float]:
    """Largest difference between each torch.compile'd piece and its eager original, on one decode
    step's shapes from a real layer's activations (diagnoses a compiled path the engine rejects)."""
    import torch

    from reference_server.engine.fast_decode import FastDecoder

    model = loaded.model
    fast = FastDecoder(model, compile_pieces=True)
    eager, compiled = fast._eager, fast._decode
    layer = fast.layers[0]
    dev = next(model.parameters()).device
    hidden = model.config.hidden_size
    gen = torch.Generator(device=dev).manual_seed(0)
    h = torch.randn(rows, 1, hidden, device=dev, generator=gen).to(model.dtype)
    d = torch.randn(rows, 1, hidden, device=dev, generator=gen).to(model.dtype)
    out: dict[str, float] = {}

    def diff(name: str, a: Any, b: Any) -> None:
        pairs = zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]
        out[name] = max((x.float() - y.float()).abs().max().item() for x, y in pairs)

    with torch.inference_mode():
        diff("rms_norm", eager.rms_norm(h, *layer.ln1), compiled.rms_norm(h, *layer.ln1))
        diff("add_rms_norm", eager.add_rms_norm(h, d, *layer.ln2), compiled.add_rms_norm(h, d, *layer.ln2))
        g, u = layer.gate_and_up(eager.rms_norm(h, *layer.ln2))
        diff("silu_mul", eager.silu_mul(g, u), compiled.silu_mul(g, u))
        q, k, _ = (t.view(rows, 1, -1, layer.head_dim).transpose(1, 2) for t in layer.project_qkv(h))
        pos = torch.full((rows, 1), 7, device=dev)
        cos, sin = fast.rotary(h, pos)
        diff("rotary", eager.rotary(q, k, cos, sin), compiled.rotary(q, k, cos, sin))
    return out


def _agreement(reference: list[list[int]], got: list[list[int]]) -> dict[str, Any]:
    """How many sequences are identical, and where the others first differ."""
    firsts = []
    for a, b in zip(reference, got, strict=True):
        diff = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
        if diff is None and len(a) != len(b):
            diff = min(len(a), len(b))
        firsts.append(diff)
    return {"sequences": len(reference), "identical": sum(d is None for d in firsts),
            "first_divergence": [d for d in firsts if d is not None]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_decode", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--model", default=None, help="a local model folder (default: the ~1B random Llama)")
    p.add_argument("--model-dir", default=None, help="where the ~1B Llama is built (default: a cache folder)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    p.add_argument("--streams", type=int, default=64, help="concurrent streams of the batched run (default 64)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--requests-c1", type=int, default=4, help="requests of the single-stream run (default 4)")
    p.add_argument("--no-raw", action="store_true", help="skip the transformers generate baselines")
    p.add_argument("--no-static", action="store_true", help="skip generate with a static (compiled) cache")
    p.add_argument("--out", default=None, help="write the JSON here")
    p.add_argument("--markdown", metavar="FILE", default=None, help="print a saved result as Markdown and exit")
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text(encoding="utf-8"))))
        return 0
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("reference_server.engine").setLevel(logging.INFO)  # which decode path, graph captures

    from bench import gpu
    from bench.loadgen import PROMPTS
    from reference_server.model.loader import load_model
    from reference_server.model.tiny import default_cache_root

    if args.model:
        folder = args.model
    else:
        _log("building / finding the ~1B Llama")
        folder = str(gpu.build_llama_1b(Path(args.model_dir) if args.model_dir else
                                        default_cache_root() / "bench-llama-1b", device=args.device))
    loaded = load_model(folder, device=args.device, dtype=args.dtype)
    report: dict[str, Any] = {"model": folder, "device": args.device, "dtype": loaded.dtype,
                              "streams": args.streams, "max_tokens": args.max_tokens}
    if args.device == "cuda":
        import torch

        report["gpu"] = torch.cuda.get_device_name(0)
    report["weight_bytes_per_token"] = gpu.weight_bytes_per_token(loaded.model)
    report["copy_bandwidth_bytes_per_s"] = gpu.copy_bandwidth(args.device)
    limit = report["bandwidth_limit_tokens_per_s"] = report["copy_bandwidth_bytes_per_s"] / report["weight_bytes_per_token"]
    _log(f"bandwidth limit {limit:.0f} tok/s ({report['copy_bandwidth_bytes_per_s'] / 1e9:.0f} GB/s, "
         f"{report['weight_bytes_per_token'] / 1e9:.2f} GB per token)")

    def save() -> None:
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2, default=str))

    prompts = list(PROMPTS)
    modes: dict[str, Any] = report.setdefault("modes", {})
    reference: list[list[int]] | None = None
    for mode in args.modes:
        _log(f"engine, {mode}")
        try:
            modes[mode] = _mode_result(loaded, mode, args, prompts)
            kw = {k: v for k, v in MODES[mode].items() if not (args.device == "cpu" and k == "compile_pieces")}
            tokens = _greedy_tokens(loaded, prompts[:8], 32, **kw)
            if reference is None:
                reference = tokens
                modes[mode]["reference_tokens"] = True
            modes[mode]["agreement"] = _agreement(reference, tokens)
        except Exception as exc:  # noqa: BLE001 - report it, measure the other modes
            modes[mode] = {"error": f"{type(exc).__name__}: {exc}"}
        save()
        _print_mode(mode, modes[mode], limit, args.streams)
    if args.device == "cuda" and "graphs+compile" in args.modes:
        try:
            report["compiled_piece_differences"] = _piece_differences(loaded)
        except Exception as exc:  # noqa: BLE001
            report["compiled_piece_differences"] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"compiled pieces, largest difference from eager: {report['compiled_piece_differences']}", flush=True)
        save()
    if args.device == "cuda":
        try:
            report["graph_replay"] = times = _replay_times(loaded, [1, args.streams])
            for name, ms in times.items():
                print(f"{name:>24}: {ms:.3f} ms per step on the device = {1e3 / ms:.0f} steps/s", flush=True)
            one = times.get("rows1_keys256_ms")
            if one:
                report["graph_replay"]["rows1_fraction_of_limit"] = (1e3 / one) / limit
        except Exception as exc:  # noqa: BLE001
            report["graph_replay"] = {"error": f"{type(exc).__name__}: {exc}"}
        save()
    if not args.no_raw:
        for name, static in (("generate_eager", False), ("generate_static_compiled", True)):
            if static and args.no_static:
                continue
            _log(f"raw {name}")
            try:
                rate = gpu.decode_tokens_per_s(loaded, static=static, new_tokens=args.max_tokens)
                report[name] = {"tokens_per_s": rate, "fraction_of_limit": rate / limit}
            except Exception as exc:  # noqa: BLE001
                report[name] = {"error": f"{type(exc).__name__}: {exc}"}
            save()
            print(f"{name:>24}: {json.dumps(report[name])}", flush=True)
    save()
    return 0


def markdown(report: dict[str, Any]) -> str:
    """A saved run as Markdown: one row per decode mode and baseline, rates against the limit."""
    limit = float(report["bandwidth_limit_tokens_per_s"])
    streams = report.get("streams", 64)
    lines = [
        f"{report.get('gpu', report.get('device'))}, {report.get('dtype')}; weights read per token "
        f"{report['weight_bytes_per_token'] / 1e9:.2f} GB, copy bandwidth "
        f"{report['copy_bandwidth_bytes_per_s'] / 1e9:.0f} GB/s: limit {limit:,.0f} tok/s",
        "",
        f"| decode mode | batch-1 tok/s | of the limit | c{streams} tok/s | c{streams} / batch-1 | greedy tokens as `forward` |",
        "|---|---|---|---|---|---|",
    ]
    for mode, r in (report.get("modes") or {}).items():
        if "error" in r:
            lines.append(f"| {mode} | error: {r['error'][:80]} | | | | |")
            continue
        rate = r["c1"].get("decode_tokens_per_s") or 0.0
        agg = r[f"c{streams}"].get("tokens_per_s") or 0.0
        agree = r.get("agreement") or {}
        label = mode + (f" (fell back to {r['fell_back_to']})" if r.get("fell_back_to") else "")
        lines.append(f"| {label} | {rate:,.0f} | {rate / limit:.1%} | {agg:,.0f} | {agg / rate if rate else 0:.1f}x | "
                     f"{agree.get('identical', '-')}/{agree.get('sequences', '-')} |")
    for name in ("generate_eager", "generate_static_compiled"):
        r = report.get(name)
        if r and "tokens_per_s" in r:
            lines.append(f"| transformers {name.removeprefix('generate_').replace('_', ' ')} generate | "
                         f"{r['tokens_per_s']:,.0f} | {r['fraction_of_limit']:.1%} | - | - | - |")
    replay = report.get("graph_replay") or {}
    for key, ms in replay.items():
        if key.endswith("_ms"):  # rows{R}_keys{K}_ms: device time of one step of R rows
            rows = int(key.split("_")[0].removeprefix("rows"))
            steps = 1e3 / ms
            share = f"{steps / limit:.1%}" if rows == 1 else "-"
            lines.append(f"| one graph replay alone ({rows} rows, {key.split('_')[1].removeprefix('keys')} keys), "
                         f"device time only | {steps:,.0f} steps/s = {rows * steps:,.0f} tok/s | {share} | - | - | - |")
    return "\n".join(lines)


def _print_mode(mode: str, r: dict[str, Any], limit: float, streams: int) -> None:
    if "error" in r:
        print(f"{mode:>24}: error {r['error'][:300]}", flush=True)
        return
    c1, cn = r["c1"], r[f"c{streams}"]
    rate = c1.get("decode_tokens_per_s") or 0.0
    agg = cn.get("tokens_per_s") or 0.0
    print(f"{mode:>24}: b1 decode {rate:8.0f} tok/s = {rate / limit:5.1%} of limit | c{streams} {agg:9.0f} tok/s "
          f"= {agg / rate if rate else 0:5.1f}x b1 (ITL p50 {1e3 * (cn['itl_s']['p50'] or 0):.2f} ms) | "
          f"tokens same as forward: {r['agreement']['identical']}/{r['agreement']['sequences']}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
