"""`python -m bench`: throughput/latency of the reference server against its baselines, in one run.

    python -m bench                                  # CPU, tiny model, concurrency 1 8 32, peer + raw + suite
    python -m bench --short                          # CI: concurrency 1 8, few requests, max_tokens 16
    python -m bench --device cuda --model-size 1b    # GPU: ~1B random Llama, bandwidth limit, 64 streams

Prints a table (rich) and writes JSON (`--out NAME` -> bench/results/NAME.json, or a path).
Nothing here asserts a timing: ratios are printed with PASS/MISS against the targets of issue 7.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.stats import RatioCheck, safe_ratio

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Targets (issue 7).
TARGET_SINGLE_VS_RAW = 0.8
TARGET_C32_VS_PEER = 2.0
TARGET_C32_VS_C1 = 4.0
TARGET_GPU_BW_FRACTION = 0.5
TARGET_GPU_C64_VS_C1 = 15.0

PEER_MODES = {"peer": False, "peer-cb": True}  # label -> --continuous-batching


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--model-size", choices=["tiny", "1b"], default=None,
                   help="'tiny' (built-in; default on cpu) or '1b' (random ~1B Llama, bf16; default on cuda)")
    p.add_argument("--model", default=None, help="a local Hugging Face model folder instead of --model-size")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    p.add_argument("--concurrency", type=int, nargs="+", default=None,
                   help="concurrency levels (default 1 8 32; cuda adds 64; --short: 1 8)")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per level (default max(8, 2 x concurrency); --short: max(2, concurrency))")
    p.add_argument("--max-tokens", type=int, default=None, help="completion tokens per request (default 64; "
                   "--short 16; 1b: 128)")
    p.add_argument("--max-batch", type=int, default=None, help="server --max-batch (default: top concurrency, >= 32)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op CPU threads for every system (OMP_NUM_THREADS for the servers, "
                   "torch.set_num_threads for raw generate); 0 leaves each its default. Default on cpu: 1, "
                   "what the engine picks for small models (2 threads are 10x slower on a busy 2-core box)")
    p.add_argument("--level-budget", type=float, default=120.0,
                   help="seconds after which a level starts no new request (default 120; 0: none)")
    p.add_argument("--short", action="store_true", help="CI mode: small counts, peer only if it starts")
    p.add_argument("--no-peer", action="store_true", help="skip `transformers serve`")
    p.add_argument("--peer-modes", nargs="+", choices=sorted(PEER_MODES), default=None,
                   help="peer modes to run (default: both; --short: peer-cb)")
    p.add_argument("--no-raw", action="store_true", help="skip the raw model.generate baseline")
    p.add_argument("--no-suite", action="store_true", help="skip the conformance-run cost measurement")
    p.add_argument("--suite", action="store_true", help="measure the suite's cost even with --short")
    p.add_argument("--model-dir", default=None, help="where --model-size 1b is built (default: a cache folder)")
    p.add_argument("--out", default=None, help="NAME (-> bench/results/NAME.json) or a .json path")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    if args.model_size is None:
        args.model_size = "1b" if args.device == "cuda" else "tiny"
    if args.concurrency is None:
        args.concurrency = [1, 8] if args.short else ([1, 8, 32, 64] if args.device == "cuda" else [1, 8, 32])
    args.concurrency = sorted(set(args.concurrency))
    if any(c < 1 for c in args.concurrency):
        raise SystemExit("python -m bench: --concurrency levels must be >= 1")
    if args.max_tokens is None:
        args.max_tokens = 16 if args.short else (128 if args.model_size == "1b" else 64)
    if args.max_batch is None:
        args.max_batch = max(32, max(args.concurrency))
    if args.peer_modes is None:
        args.peer_modes = ["peer-cb"] if args.short else list(PEER_MODES)
    if args.threads is None:
        args.threads = 1 if args.device == "cpu" else 0
    if args.short and not args.suite:
        args.no_suite = True
    return args


def requests_for(args: argparse.Namespace, concurrency: int) -> int:
    if args.requests is not None:
        return max(1, args.requests)
    return max(2, concurrency) if args.short else max(8, 2 * concurrency)


def out_path(out: str | None, args: argparse.Namespace) -> Path:
    if out is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{args.device}-{args.model_size}{'-short' if args.short else ''}-{stamp}"
        return RESULTS_DIR / f"{name}.json"
    if out.endswith(".json") or os.sep in out:
        return Path(out)
    return RESULTS_DIR / f"{out}.json"


def _log(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine_info(device: str) -> dict[str, Any]:
    import torch
    import transformers

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_bytes"] = torch.cuda.get_device_properties(0).total_memory
    return info


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def resolve_model_dir(args: argparse.Namespace) -> tuple[str, str]:
    """(spec for the reference server, local folder for the peer)."""
    if args.model:
        return args.model, str(Path(args.model).resolve())
    if args.model_size == "tiny":
        from reference_server.model.tiny import build_tiny_model

        return "tiny", str(build_tiny_model())
    from bench.gpu import build_llama_1b
    from reference_server.model.tiny import default_cache_root

    folder = Path(args.model_dir) if args.model_dir else default_cache_root() / "bench-llama-1b"
    path = build_llama_1b(folder, device=args.device)
    return str(path), str(path)


# --------------------------------------------------------------------------- phases


def phase_raw(args: argparse.Namespace, spec: str, report: dict[str, Any]) -> None:
    import torch

    from bench.loadgen import PROMPTS
    from bench.raw import raw_generate
    from reference_server.model.loader import load_model

    loaded = load_model(spec, device=args.device, dtype=args.dtype)
    raw: dict[str, Any] = {}
    n1 = requests_for(args, 1)
    prompts1 = [PROMPTS[i % len(PROMPTS)] for i in range(n1)]
    _log(args, f"raw generate, batch 1, {n1} sequences x {args.max_tokens} tokens")
    raw["b1"] = raw_generate(loaded, prompts1, batch=1, max_new_tokens=args.max_tokens).summary()
    for c in args.concurrency:
        if c == 1:
            continue
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(c)]
        _log(args, f"raw generate, batch {c} (padded), {c} sequences")
        try:
            raw[f"b{c}"] = raw_generate(loaded, prompts, batch=c, max_new_tokens=args.max_tokens).summary()
        except Exception as exc:  # noqa: BLE001 - e.g. OOM on a big batch: keep going
            raw[f"b{c}"] = {"error": f"{type(exc).__name__}: {exc}"}
    from bench.engine_direct import engine_direct

    eng: dict[str, Any] = {}
    for c in args.concurrency:
        n = requests_for(args, c)
        _log(args, f"engine in-process (no HTTP), concurrency {c}, {n} requests")
        try:
            eng[f"c{c}"] = engine_direct(loaded, [PROMPTS[i % len(PROMPTS)] for i in range(n)], concurrency=c,
                                         max_tokens=args.max_tokens, max_batch=args.max_batch)
        except Exception as exc:  # noqa: BLE001
            eng[f"c{c}"] = {"error": f"{type(exc).__name__}: {exc}"}
    report["engine"] = eng
    if args.device == "cuda":
        from bench import gpu

        g: dict[str, Any] = report.setdefault("gpu", {})
        g["weight_bytes_per_token"] = gpu.weight_bytes_per_token(loaded.model)
        g["parameters"] = sum(p.numel() for p in loaded.model.parameters())
        _log(args, "device copy bandwidth")
        g["copy_bandwidth_bytes_per_s"] = gpu.copy_bandwidth(args.device)
        g["bandwidth_limit_tokens_per_s"] = g["copy_bandwidth_bytes_per_s"] / g["weight_bytes_per_token"]
        for name, static in (("raw_decode_eager", False), ("raw_decode_static_compiled", True)):
            _log(args, f"batch-1 decode rate: {name}")
            try:
                rate = gpu.decode_tokens_per_s(loaded, static=static)
                g[name] = {"tokens_per_s": rate, "fraction_of_limit": rate / g["bandwidth_limit_tokens_per_s"]}
            except Exception as exc:  # noqa: BLE001
                g[name] = {"error": f"{type(exc).__name__}: {exc}"}
    report["raw"] = raw
    del loaded
    gc.collect()
    if args.device == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


async def _load_levels(args: argparse.Namespace, base_url: str, pid: int, label: str,
                       extra_body: dict[str, Any], health_url: str | None) -> dict[str, Any]:
    import httpx

    from bench.loadgen import first_model, run_load
    from bench.servers import MemoryWatcher

    model = await first_model(base_url)
    # Warm up: the first requests pay for lazy initialisation (peer CB manager, allocator, caches).
    warm = await run_load(base_url, model, concurrency=2, requests=2, max_tokens=min(8, args.max_tokens),
                          extra_body=extra_body, label="warmup")
    if not warm.ok:
        raise RuntimeError(f"{label}: warm-up requests failed: {warm.errors[:1]}")
    levels: dict[str, Any] = {}
    for c in args.concurrency:
        n = requests_for(args, c)
        _log(args, f"{label}: concurrency {c}, {n} requests x {args.max_tokens} tokens")
        with MemoryWatcher(pid, gpu=args.device == "cuda") as mem:
            res = await run_load(base_url, model, concurrency=c, requests=n, max_tokens=args.max_tokens,
                                 extra_body=extra_body, label=label, budget_s=args.level_budget or None)
        res.peak_rss_bytes = mem.peak_rss
        res.gpu_peak_bytes = mem.peak_gpu
        summary = res.summary()
        if health_url:
            try:
                async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
                    summary["health"] = (await client.get(health_url)).json()
            except (httpx.HTTPError, ValueError):
                pass
        levels[f"c{c}"] = summary
    return levels


def phase_server(args: argparse.Namespace, spec: str, report: dict[str, Any]) -> None:
    from bench.servers import reference_server

    _log(args, f"starting the reference server ({spec}, {args.device}, max_batch {args.max_batch})")
    with reference_server(spec, device=args.device, max_batch=args.max_batch, dtype=args.dtype) as (url, pid):
        root = url.rsplit("/v1", 1)[0]
        report["server"] = asyncio.run(
            _load_levels(args, url, pid, "server", {"ignore_eos": True}, f"{root}/health")
        )


def peer_extra_body(max_tokens: int) -> dict[str, Any]:
    # `transformers serve` has no ignore_eos; it takes a whole GenerationConfig as JSON instead.
    # min_new_tokens = max_tokens masks EOS until the last token, so every request generates the same count.
    return {"generation_config": json.dumps({"do_sample": False, "max_new_tokens": max_tokens,
                                             "min_new_tokens": max_tokens})}


def phase_peer(args: argparse.Namespace, folder: str, report: dict[str, Any]) -> None:
    from bench.servers import ServerStartError, peer_server

    peers: dict[str, Any] = report.setdefault("peer", {})
    for mode in args.peer_modes:
        cb = PEER_MODES[mode]
        _log(args, f"starting transformers serve ({mode})")
        try:
            with peer_server(folder, device=args.device, continuous_batching=cb) as (url, pid):
                peers[mode] = asyncio.run(_load_levels(args, url, pid, mode, peer_extra_body(args.max_tokens),
                                                       None))
        except (ServerStartError, RuntimeError, OSError) as exc:
            peers[mode] = {"error": str(exc)[-3000:]}
            _log(args, f"{mode} unavailable: {str(exc)[-500:]}")


def phase_suite(args: argparse.Namespace, report: dict[str, Any]) -> None:
    from bench.suite_cost import run_suite

    _log(args, "conformance run (default, embedded server)")
    report["suite"] = run_suite()


# --------------------------------------------------------------------------- ratios


def _tps(section: dict[str, Any] | None, level: str) -> float | None:
    if not section or "error" in section:
        return None
    entry = section.get(level) or {}
    if entry.get("errors"):
        return None
    value = entry.get("tokens_per_s")
    return float(value) if value is not None else None


def compute_ratios(report: dict[str, Any], args: argparse.Namespace) -> list[RatioCheck]:
    server = report.get("server")
    raw = report.get("raw") or {}
    top = max(args.concurrency)
    checks: list[RatioCheck] = []
    raw_b1 = (raw.get("b1") or {}).get("tokens_per_s")
    checks.append(RatioCheck("server_single / raw_generate_single", "server c1 tok/s", "raw generate b=1 tok/s",
                             safe_ratio(_tps(server, "c1"), raw_b1), TARGET_SINGLE_VS_RAW))
    ref = 32 if 32 in args.concurrency else top
    if ref != 1:  # with a single level only the overhead ratio means anything
        peer_vals: list[tuple[str, float]] = []
        for mode, sec in (report.get("peer") or {}).items():
            value = _tps(sec, f"c{ref}")
            if value is not None:
                peer_vals.append((mode, value))
        best = max(peer_vals, key=lambda mv: mv[1]) if peer_vals else None
        checks.append(RatioCheck(f"server_c{ref} / peer_best_c{ref}", f"server c{ref} tok/s",
                                 f"{best[0] if best else 'peer'} c{ref} tok/s",
                                 safe_ratio(_tps(server, f"c{ref}"), best[1] if best else None), TARGET_C32_VS_PEER))
        checks.append(RatioCheck(f"server_c{ref} / server_c1", f"server c{ref} tok/s", "server c1 tok/s",
                                 safe_ratio(_tps(server, f"c{ref}"), _tps(server, "c1")), TARGET_C32_VS_C1))
    if args.device == "cuda":
        g = report.get("gpu") or {}
        limit = g.get("bandwidth_limit_tokens_per_s")
        itl = (((server or {}).get("c1") or {}).get("itl_s") or {}).get("p50")
        server_decode = 1.0 / itl if itl else None
        g["server_decode_b1_tokens_per_s"] = server_decode
        checks.append(RatioCheck("server batch-1 decode / bandwidth limit", "1 / ITL p50 at c1",
                                 "copy bandwidth / weight bytes per token", safe_ratio(server_decode, limit),
                                 TARGET_GPU_BW_FRACTION))
        for name in ("raw_decode_eager", "raw_decode_static_compiled"):
            rate = (g.get(name) or {}).get("tokens_per_s")
            checks.append(RatioCheck(f"{name} / bandwidth limit", f"{name} tok/s", "bandwidth limit",
                                     safe_ratio(rate, limit), TARGET_GPU_BW_FRACTION))
        if 64 in args.concurrency:
            checks.append(RatioCheck("server_c64 / server_c1", "server c64 tok/s", "server c1 tok/s",
                                     safe_ratio(_tps(server, "c64"), _tps(server, "c1")), TARGET_GPU_C64_VS_C1))
    # Informational (no target): where the time goes. engine = BatchingEngine in-process, no HTTP.
    eng = report.get("engine") or {}
    checks.append(RatioCheck("engine_c1 / raw_generate_single", "engine c1 tok/s", "raw generate b=1 tok/s",
                             safe_ratio((eng.get("c1") or {}).get("tokens_per_s"), raw_b1), 0.0))
    for c in args.concurrency:
        checks.append(RatioCheck(f"server_c{c} / engine_c{c}", f"server c{c} tok/s", f"engine c{c} tok/s",
                                 safe_ratio(_tps(server, f"c{c}"), (eng.get(f"c{c}") or {}).get("tokens_per_s")),
                                 0.0))
    # Informational (no target): the server against padded batched generate at each level.
    for c in args.concurrency:
        if c == 1:
            continue
        rb = (raw.get(f"b{c}") or {}).get("tokens_per_s")
        checks.append(RatioCheck(f"server_c{c} / raw_generate_b{c}", f"server c{c} tok/s",
                                 f"raw generate b={c} (padded) tok/s", safe_ratio(_tps(server, f"c{c}"), rb), 0.0))
    return checks


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "schema": "bench/1",
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "args": {k: v for k, v in vars(args).items() if k != "quiet"},
        "machine": machine_info(args.device),
        "loadavg_start": loadavg(),
    }
    t0 = time.perf_counter()
    spec, folder = resolve_model_dir(args)
    report["model"] = {"spec": spec, "folder": folder}
    if not args.no_raw:
        try:
            phase_raw(args, spec, report)
        except Exception as exc:  # noqa: BLE001 - report and carry on with the other phases
            report["raw"] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    try:
        phase_server(args, spec, report)
    except Exception as exc:  # noqa: BLE001
        report["server"] = {"error": f"{type(exc).__name__}: {exc}"[-3000:]}
    if not args.no_peer:
        phase_peer(args, folder, report)
    if not args.no_suite:
        try:
            phase_suite(args, report)
        except Exception as exc:  # noqa: BLE001
            report["suite"] = {"error": f"{type(exc).__name__}: {exc}"}
    report["ratios"] = [c.as_dict() for c in compute_ratios(report, args)]
    report["wall_s"] = time.perf_counter() - t0
    report["loadavg_end"] = loadavg()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = resolve_args(build_parser().parse_args(argv))
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("python -m bench: --device cuda but torch sees no CUDA device", file=sys.stderr)
            return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.threads:
        import torch

        # Inherited by the server processes (and `conformance run`'s embedded server); raw generate
        # runs in this process.
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    report = run(args)
    from bench.report import print_report

    print_report(report)
    path = out_path(args.out, args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0
