"""`python -m bench`: throughput/latency of the reference server against its baselines, in one run.

    python -m bench                                  # CPU, tiny model, concurrency 1 8 32, peer + raw + suite
    python -m bench --short                          # CI: concurrency 1 8, few requests, max_tokens 16
    python -m bench --device cuda --model-size 1b    # GPU: ~1B random Llama, bandwidth limit, 64 streams

The reference server runs twice, both up together: `server` (`--engine-process off`: the engine
thread in the server process) and `server_process` (`--engine-process on`, the server's default:
the model in a child process; `--no-engine-process` skips it). The single-stream comparison (each server at c1 against raw
generate b=1, and the engine in process) runs in paired rounds while the servers are up: each round
measures them back to back, order alternating, and a ratio is the median of the per-round ratios
(`--rounds`, default 5; --short 3). The other levels are measured once per server, the two servers
back to back at each level.

Prints a table (rich) and writes JSON (`--out NAME` -> bench/results/NAME.json, or a path).
Nothing here asserts a timing: ratios are printed with PASS/MISS against the targets of issue 7.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.paired import SINGLE_STREAM_ORDER, PairedRounds, Sample, pair_key, run_paired_rounds
from bench.stats import RatioCheck, safe_ratio, spread

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Targets (issue 7).
TARGET_SINGLE_VS_RAW = 0.8
TARGET_C32_VS_PEER = 2.0
TARGET_C32_VS_C1 = 4.0
TARGET_GPU_BW_FRACTION = 0.5
TARGET_GPU_C64_VS_C1 = 15.0

PEER_MODES = {"peer": False, "peer-cb": True}  # label -> --continuous-batching
# The reference server's modes: report key -> --engine-process on; and their labels in the tables.
SERVER_MODES = {"server": False, "server_process": True}
SERVER_LABELS = {"server": "server", "server_process": "server (engine process)"}


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
    p.add_argument("--rounds", type=int, default=None,
                   help="paired rounds of the single-stream comparison: raw generate b=1, engine c1 and server "
                   "c1 back to back, order alternating; ratios are medians of per-round ratios (default 5; "
                   "--short: 3)")
    p.add_argument("--short", action="store_true", help="CI mode: small counts, peer only if it starts")
    p.add_argument("--no-peer", action="store_true", help="skip `transformers serve`")
    p.add_argument("--peer-modes", nargs="+", choices=sorted(PEER_MODES), default=None,
                   help="peer modes to run (default: both; --short: peer-cb)")
    p.add_argument("--no-engine-process", action="store_true",
                   help="skip the second reference server, `--engine-process on` (model in a child process)")
    p.add_argument("--no-raw", action="store_true", help="skip the raw model.generate baseline")
    p.add_argument("--no-raw-static", action="store_true",
                   help="cuda: skip generate with a static cache (transformers compiles it: a minute or more)")
    p.add_argument("--peer-max-concurrency", type=int, default=None,
                   help="measure `transformers serve` without continuous batching only up to this concurrency "
                   "(it serves one request at a time; default: every level on cpu, 8 on cuda)")
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
    if args.rounds is None:
        args.rounds = 3 if args.short else 5
    if args.rounds < 1:
        raise SystemExit("python -m bench: --rounds must be >= 1")
    if args.max_tokens is None:
        args.max_tokens = 16 if args.short else (128 if args.model_size == "1b" else 64)
    if args.max_batch is None:
        args.max_batch = max(32, max(args.concurrency))
    if args.peer_modes is None:
        args.peer_modes = ["peer-cb"] if args.short else list(PEER_MODES)
    if args.threads is None:
        args.threads = 1 if args.device == "cpu" else 0
    if args.peer_max_concurrency is None and args.device == "cuda":
        args.peer_max_concurrency = 8
    if args.short and not args.suite:
        args.no_suite = True
    return args


def server_modes(args: argparse.Namespace) -> list[str]:
    """The reference server modes this run measures (report keys, see SERVER_MODES)."""
    return [key for key in SERVER_MODES if not (SERVER_MODES[key] and args.no_engine_process)]


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


def single_prompts(args: argparse.Namespace) -> list[str]:
    """The single-stream workload: the prompts the server's c1 level sends, in the same order."""
    from bench.loadgen import PROMPTS

    return [PROMPTS[i % len(PROMPTS)] for i in range(requests_for(args, 1))]


def load_bench_model(args: argparse.Namespace, spec: str) -> Any:
    """The model for raw generate and the in-process engine, loaded once in this process."""
    from reference_server.model.loader import load_model

    loaded = load_model(spec, device=args.device, dtype=args.dtype)
    # As the server does after loading: torch/transformers leave hundreds of thousands of long-lived
    # objects, and a full collection over them (~200 ms) would land in a random measurement.
    gc.collect()
    gc.freeze()
    return loaded


def phase_raw(args: argparse.Namespace, loaded: Any, report: dict[str, Any]) -> None:
    """Raw generate at the batched levels and the engine at concurrency > 1 (the single stream is
    measured in paired rounds, see `run_single_stream`), and on CUDA the bandwidth figures."""
    from bench.loadgen import PROMPTS
    from bench.raw import raw_generate

    raw: dict[str, Any] = {}
    for c in args.concurrency:
        if c == 1:
            continue
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(c)]
        _log(args, f"raw generate, batch {c} (padded), {c} sequences")
        try:
            raw[f"b{c}"] = raw_generate(loaded, prompts, batch=c, max_new_tokens=args.max_tokens).summary()
        except Exception as exc:  # noqa: BLE001 - e.g. OOM on a big batch: keep going
            raw[f"b{c}"] = {"error": f"{type(exc).__name__}: {exc}"}
    report["raw"] = raw
    from bench.engine_direct import engine_direct

    eng: dict[str, Any] = {}
    for c in args.concurrency:
        if c == 1:
            continue
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
            if static and args.no_raw_static:
                continue
            _log(args, f"batch-1 decode rate: {name}")
            try:
                rate = gpu.decode_tokens_per_s(loaded, static=static)
                g[name] = {"tokens_per_s": rate, "fraction_of_limit": rate / g["bandwidth_limit_tokens_per_s"]}
            except Exception as exc:  # noqa: BLE001
                g[name] = {"error": f"{type(exc).__name__}: {exc}"}


def release_bench_model(args: argparse.Namespace) -> None:
    """After the last in-process measurement: let the collector see (and free) the model, refreeze."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    if args.device == "cuda":
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


ServerHandle = tuple[str, int, str]  # (base_url, pid, model id)


def single_stream_measures(args: argparse.Namespace, loaded: Any, stock_attn: str | None,
                           servers: Mapping[str, ServerHandle]) -> dict[str, Callable[[], Sample]]:
    """One callable per system for a paired round, all on the same prompts and max_tokens
    (`servers`: report key -> handle, for each reference server that is up)."""
    prompts = single_prompts(args)
    measures: dict[str, Callable[[], Sample]] = {}
    if loaded is not None:
        from bench.engine_direct import engine_run
        from bench.raw import raw_generate, stock_attention

        def raw() -> Sample:
            with stock_attention(loaded.model, stock_attn):
                r = raw_generate(loaded, prompts, batch=1, max_new_tokens=args.max_tokens)
            return Sample(r.tokens_per_s, r.wall_s, detail=r)

        measures["raw"] = raw
        if 1 in args.concurrency:

            def engine() -> Sample:
                r = engine_run(loaded, prompts, concurrency=1, max_tokens=args.max_tokens,
                               max_batch=args.max_batch)
                return Sample(r.tokens_per_s, r.wall_s, detail=r)

            measures["engine"] = engine
    if 1 in args.concurrency:
        from bench.loadgen import run_load
        from bench.servers import MemoryWatcher

        def server_c1(key: str, handle: ServerHandle) -> Callable[[], Sample]:
            url, pid, model = handle

            def measure() -> Sample:
                with MemoryWatcher(pid, gpu=args.device == "cuda") as mem:
                    res = asyncio.run(run_load(url, model, concurrency=1, requests=len(prompts),
                                               max_tokens=args.max_tokens, extra_body={"ignore_eos": True},
                                               label=key, budget_s=args.level_budget or None))
                res.peak_rss_bytes = mem.peak_rss
                res.gpu_peak_bytes = mem.peak_gpu
                error = res.errors[0] if res.errors else None
                return Sample(None if error else res.tokens_per_s, res.wall_s, error=error, detail=res)

            return measure

        for key, handle in servers.items():
            measures[key] = server_c1(key, handle)
    return measures


def with_round_stats(summary: dict[str, Any], st: dict[str, float | None]) -> dict[str, Any]:
    """A pooled summary whose tokens_per_s is the median over the rounds (pooled figure kept aside)."""
    summary["tokens_per_s_pooled"] = summary.get("tokens_per_s")
    summary["tokens_per_s"] = st["median"]
    summary["tokens_per_s_min"] = st["min"]
    summary["tokens_per_s_max"] = st["max"]
    summary["paired_rounds"] = st["n"]
    return summary


def record_single_stream(args: argparse.Namespace, paired: PairedRounds,
                         report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Write the rounds under report["single_stream"], the pooled raw b1 and engine c1 entries under
    "raw"/"engine"; return each measured server's c1 entry by report key ("server", "server_process").

    Each entry pools every request of every round (TTFT/ITL percentiles, totals), except tokens_per_s
    (and requests_per_s for the server): the median over the rounds, with min and max beside it.
    """
    from bench.engine_direct import EngineResult
    from bench.loadgen import LoadResult
    from bench.raw import RawResult

    st = paired.tokens_per_s_stats()
    report["single_stream"] = {"rounds_requested": args.rounds, "requests": requests_for(args, 1),
                               "max_tokens": args.max_tokens, **paired.as_dict()}

    def first_error(system: str) -> str:
        errors = [r.samples[system].error for r in paired.rounds if system in r.samples]
        return next((e for e in errors if e), "no round produced a figure")

    if "raw" in paired.systems:
        raws = paired.details("raw")
        b1 = (with_round_stats(RawResult.pooled(raws).summary(), st["raw"]) if raws
              else {"error": first_error("raw")})
        report["raw"] = {"b1": b1, **(report.get("raw") or {})}
    if "engine" in paired.systems:
        engs = paired.details("engine")
        c1 = (with_round_stats(EngineResult.pooled(engs).summary(), st["engine"]) if engs
              else {"error": first_error("engine")})
        report["engine"] = {"c1": c1, **(report.get("engine") or {})}
    servers: dict[str, dict[str, Any]] = {}
    for key in SERVER_MODES:
        if key not in paired.systems:
            continue
        loads: list[LoadResult] = paired.details(key)
        if not loads:
            servers[key] = {"error": first_error(key), "errors": len(paired.rounds)}
            continue
        pooled = LoadResult(key, 1, sum(r.requests for r in loads), args.max_tokens,
                            sum(r.wall_s for r in loads), [x for r in loads for x in r.results])
        rss = [r.peak_rss_bytes for r in loads if r.peak_rss_bytes is not None]
        gpu = [r.gpu_peak_bytes for r in loads if r.gpu_peak_bytes is not None]
        pooled.peak_rss_bytes = max(rss) if rss else None
        pooled.gpu_peak_bytes = max(gpu) if gpu else None
        summary = with_round_stats(pooled.summary(), st[key])
        summary["requests_per_s_pooled"] = summary.get("requests_per_s")
        summary["requests_per_s"] = spread(None if r.errors else r.requests_per_s for r in loads)["median"]
        servers[key] = summary
    return servers


def run_single_stream(args: argparse.Namespace, report: dict[str, Any], loaded: Any, stock_attn: str | None,
                      servers: Mapping[str, ServerHandle]) -> dict[str, dict[str, Any]]:
    """The paired rounds (see bench/paired.py); returns each server's pooled c1 entry by report key."""
    measures = single_stream_measures(args, loaded, stock_attn, servers)
    if not measures:
        return {}
    first = [s for s in SINGLE_STREAM_ORDER if s in measures] + [s for s in measures if s not in SINGLE_STREAM_ORDER]
    _log(args, f"single stream: {args.rounds} paired rounds of {' > '.join(first)} (order reversed every other "
               f"round), "
               f"{requests_for(args, 1)} requests x {args.max_tokens} tokens each")
    from bench.servers import OtherCpu

    pids = [os.getpid()] + [pid for _, pid, _ in servers.values()]  # each with its children (engine process)
    paired = run_paired_rounds(args.rounds, measures, probe=lambda: OtherCpu(pids), log=lambda m: _log(args, m))
    for key, st in paired.ratio_stats().items():
        if st["n"]:
            _log(args, f"single stream {key}: median {st['median']:.2f} ({st['min']:.2f}..{st['max']:.2f}, "
                       f"{st['n']} rounds)")
    return record_single_stream(args, paired, report)


async def _warm_up(args: argparse.Namespace, base_url: str, label: str, extra_body: dict[str, Any]) -> str:
    """The served model's id, after two short requests (the first ones pay for lazy initialisation)."""
    from bench.loadgen import first_model, run_load

    model = await first_model(base_url)
    # Warm up: the first requests pay for lazy initialisation (peer CB manager, allocator, caches).
    warm = await run_load(base_url, model, concurrency=2, requests=2, max_tokens=min(8, args.max_tokens),
                          extra_body=extra_body, label="warmup")
    if not warm.ok:
        raise RuntimeError(f"{label}: warm-up requests failed: {warm.errors[:1]}")
    return model


async def _health(health_url: str) -> Any:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
            return (await client.get(health_url)).json()
    except (httpx.HTTPError, ValueError):
        return None


async def _load_levels(args: argparse.Namespace, base_url: str, pid: int, label: str, model: str,
                       extra_body: dict[str, Any], health_url: str | None,
                       concurrency: Sequence[int]) -> dict[str, Any]:
    from bench.loadgen import run_load
    from bench.servers import MemoryWatcher

    levels: dict[str, Any] = {}
    for c in concurrency:
        n = requests_for(args, c)
        _log(args, f"{label}: concurrency {c}, {n} requests x {args.max_tokens} tokens")
        with MemoryWatcher(pid, gpu=args.device == "cuda") as mem:
            res = await run_load(base_url, model, concurrency=c, requests=n, max_tokens=args.max_tokens,
                                 extra_body=extra_body, label=label, budget_s=args.level_budget or None)
        res.peak_rss_bytes = mem.peak_rss
        res.gpu_peak_bytes = mem.peak_gpu
        summary = res.summary()
        if health_url:
            health = await _health(health_url)
            if health is not None:
                summary["health"] = health
        levels[f"c{c}"] = summary
    return levels


async def _warm_and_levels(args: argparse.Namespace, base_url: str, pid: int, label: str,
                           extra_body: dict[str, Any], health_url: str | None,
                           max_concurrency: int | None = None) -> dict[str, Any]:
    model = await _warm_up(args, base_url, label, extra_body)
    levels = [c for c in args.concurrency if max_concurrency is None or c <= max_concurrency]
    return await _load_levels(args, base_url, pid, label, model, extra_body, health_url, levels)


def phase_server(args: argparse.Namespace, spec: str, report: dict[str, Any], loaded: Any = None,
                 stock_attn: str | None = None) -> None:
    """The reference server in each of `server_modes(args)`, all up together: paired single-stream
    rounds (with raw generate and the engine when `loaded` is given), then the other concurrency
    levels, one measurement each, the servers back to back at each level. A server that does not
    start is reported under its key as {"error": ...}; the others are measured all the same."""
    from bench.servers import reference_server

    extra = {"ignore_eos": True}
    with contextlib.ExitStack() as stack:
        handles: dict[str, ServerHandle] = {}
        for key in server_modes(args):
            label, on = SERVER_LABELS[key], SERVER_MODES[key]
            _log(args, f"starting the reference server, {label} ({spec}, {args.device}, max_batch {args.max_batch}, "
                       f"--engine-process {'on' if on else 'off'})")
            try:
                url, pid = stack.enter_context(reference_server(spec, device=args.device, max_batch=args.max_batch,
                                                                dtype=args.dtype, engine_process=on))
                handles[key] = (url, pid, asyncio.run(_warm_up(args, url, label, extra)))
            except Exception as exc:  # noqa: BLE001 - measure the other mode all the same
                report[key] = {"error": f"{type(exc).__name__}: {exc}"[-3000:]}
                _log(args, f"{label} unavailable: {str(exc)[-500:]}")
        if not handles:
            return
        sections: dict[str, dict[str, Any]] = {key: {} for key in handles}

        def health_url(key: str) -> str:
            return f"{handles[key][0].rsplit('/v1', 1)[0]}/health"

        for key, c1 in run_single_stream(args, report, loaded, stock_attn, handles).items():
            health = asyncio.run(_health(health_url(key)))
            if health is not None:
                c1["health"] = health
            sections[key]["c1"] = c1
        for c in args.concurrency:
            if c == 1:
                continue
            for key, (url, pid, model) in handles.items():
                sections[key].update(asyncio.run(_load_levels(args, url, pid, key, model, extra,
                                                              health_url(key), [c])))
        report.update(sections)


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
                peers[mode] = asyncio.run(_warm_and_levels(args, url, pid, mode, peer_extra_body(args.max_tokens),
                                                           None, None if cb else args.peer_max_concurrency))
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


def paired_check(report: dict[str, Any], name: str, numerator: str, denominator: str, fallback: float | None,
                 target: float) -> RatioCheck:
    """`name` from the paired single-stream rounds: the median of the per-round `numerator / denominator`
    ratios (bench/2), or `fallback` (a ratio of two single measurements) when the run has no rounds."""
    labels = {"server": "server c1 tok/s", "engine": "engine c1 tok/s", "raw": "raw generate b=1 tok/s",
              "server_process": "server (engine process) c1 tok/s"}
    st = ((report.get("single_stream") or {}).get("ratios") or {}).get(pair_key(numerator, denominator))
    if st is None:
        return RatioCheck(name, labels[numerator], labels[denominator], fallback, target)
    return RatioCheck(name, labels[numerator], f"{labels[denominator]}, same round", st.get("median"), target,
                      st.get("min"), st.get("max"), int(st.get("n") or 0))


def _peer_best(report: dict[str, Any], level: str) -> tuple[str, float] | None:
    """(mode, tok/s) of the faster peer mode at `level`, or None when no peer mode measured it."""
    peer_vals: list[tuple[str, float]] = []
    for mode, sec in (report.get("peer") or {}).items():
        value = _tps(sec, level)
        if value is not None:
            peer_vals.append((mode, value))
    return max(peer_vals, key=lambda mv: mv[1]) if peer_vals else None


def server_target_checks(
    report: dict[str, Any], args: argparse.Namespace, key: str, raw_b1: float | None, single_name: str
) -> list[RatioCheck]:
    """One server mode (`server` or `server_process`) against issue 7's targets."""
    sec = report.get(key)
    label = SERVER_LABELS[key]
    suffix = f" ({label})" if key != "server" else ""
    checks = [paired_check(report, single_name, key, "raw", safe_ratio(_tps(sec, "c1"), raw_b1), TARGET_SINGLE_VS_RAW)]
    ref = 32 if 32 in args.concurrency else max(args.concurrency)
    if ref != 1:  # with a single level only the overhead ratio means anything
        best = _peer_best(report, f"c{ref}")
        checks.append(RatioCheck(f"{key}_c{ref} / peer_best_c{ref}", f"{label} c{ref} tok/s",
                                 f"{best[0] if best else 'peer'} c{ref} tok/s",
                                 safe_ratio(_tps(sec, f"c{ref}"), best[1] if best else None), TARGET_C32_VS_PEER))
        checks.append(RatioCheck(f"{key}_c{ref} / {key}_c1", f"{label} c{ref} tok/s", f"{label} c1 tok/s",
                                 safe_ratio(_tps(sec, f"c{ref}"), _tps(sec, "c1")), TARGET_C32_VS_C1))
    if args.device == "cuda":
        g = report.get("gpu") or {}
        itl = (((sec or {}).get("c1") or {}).get("itl_s") or {}).get("p50")
        decode = 1.0 / itl if itl else None
        g[f"{key}_decode_b1_tokens_per_s"] = decode
        checks.append(RatioCheck(f"{key} batch-1 decode / bandwidth limit", f"1 / ITL p50 at c1{suffix}",
                                 "copy bandwidth / weight bytes per token",
                                 safe_ratio(decode, g.get("bandwidth_limit_tokens_per_s")), TARGET_GPU_BW_FRACTION))
        if 64 in args.concurrency:
            checks.append(RatioCheck(f"{key}_c64 / {key}_c1", f"{label} c64 tok/s", f"{label} c1 tok/s",
                                     safe_ratio(_tps(sec, "c64"), _tps(sec, "c1")), TARGET_GPU_C64_VS_C1))
    return checks


def compute_ratios(report: dict[str, Any], args: argparse.Namespace) -> list[RatioCheck]:
    server = report.get("server")
    raw = report.get("raw") or {}
    checks: list[RatioCheck] = []
    raw_b1 = (raw.get("b1") or {}).get("tokens_per_s")
    checks += server_target_checks(report, args, "server", raw_b1, "server_single / raw_generate_single")
    if args.device == "cuda":
        g = report.get("gpu") or {}
        for name in ("raw_decode_eager", "raw_decode_static_compiled"):
            rate = (g.get(name) or {}).get("tokens_per_s")
            checks.append(RatioCheck(f"{name} / bandwidth limit", f"{name} tok/s", "bandwidth limit",
                                     safe_ratio(rate, g.get("bandwidth_limit_tokens_per_s")), TARGET_GPU_BW_FRACTION))
    with_process = not getattr(args, "no_engine_process", False)
    if with_process:
        name = "server_process_c1 / raw_generate_single"
        checks += server_target_checks(report, args, "server_process", raw_b1, name)
    # Informational (no target): where the time goes. engine = BatchingEngine in-process, no HTTP.
    eng = report.get("engine") or {}
    checks.append(paired_check(report, "engine_c1 / raw_generate_single", "engine", "raw",
                               safe_ratio((eng.get("c1") or {}).get("tokens_per_s"), raw_b1), 0.0))
    for c in args.concurrency:
        if c == 1:
            checks.append(paired_check(report, "server_c1 / engine_c1", "server", "engine",
                                       safe_ratio(_tps(server, "c1"), (eng.get("c1") or {}).get("tokens_per_s")),
                                       0.0))
            continue
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
    # Informational (no target): the engine process against the default in-process engine, per level
    # (c1 in the paired rounds; the others measured back to back, once each).
    if with_process:
        proc, label = report.get("server_process"), SERVER_LABELS["server_process"]
        for c in args.concurrency:
            if c == 1:
                checks.append(paired_check(report, "server_process_c1 / server_c1", "server_process", "server",
                                           safe_ratio(_tps(proc, "c1"), _tps(server, "c1")), 0.0))
                continue
            checks.append(RatioCheck(f"server_process_c{c} / server_c{c}", f"{label} c{c} tok/s",
                                     f"server c{c} tok/s", safe_ratio(_tps(proc, f"c{c}"), _tps(server, f"c{c}")),
                                     0.0))
    return checks


# --------------------------------------------------------------------------- main


def server_default_engine_process() -> str:
    """What `reference-server` does without `--engine-process` ("on" or "off"), for the report's labels."""
    from reference_server.cli import build_parser as server_parser

    return str(server_parser().get_default("engine_process"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "schema": "bench/2",
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "args": {k: v for k, v in vars(args).items() if k != "quiet"},
        "machine": machine_info(args.device),
        "loadavg_start": loadavg(),
        "server_default_engine_process": server_default_engine_process(),
    }
    t0 = time.perf_counter()
    spec, folder = resolve_model_dir(args)
    report["model"] = {"spec": spec, "folder": folder}
    loaded: Any = None
    stock_attn: str | None = None
    if not args.no_raw:
        try:
            from bench.raw import attn_implementation

            loaded = load_bench_model(args, spec)
            stock_attn = attn_implementation(loaded.model)  # before an engine switches it
            phase_raw(args, loaded, report)
        except Exception as exc:  # noqa: BLE001 - report and carry on with the other phases
            report["raw"] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            loaded = None
    try:
        phase_server(args, spec, report, loaded, stock_attn)
    except Exception as exc:  # noqa: BLE001
        for key in server_modes(args):  # a server that failed to start keeps its own error
            if "error" not in (report.get(key) or {}):
                report[key] = {"error": f"{type(exc).__name__}: {exc}"[-3000:]}
    if "single_stream" not in report and loaded is not None:
        # No server (or it failed before its rounds): still measure raw generate and the engine in rounds.
        _log(args, "single stream without the server")
        try:
            run_single_stream(args, report, loaded, stock_attn, {})
        except Exception as exc:  # noqa: BLE001
            report.setdefault("raw", {})["b1"] = {"error": f"{type(exc).__name__}: {exc}"}
    loaded = None
    release_bench_model(args)
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
