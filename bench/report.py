"""Render a bench report (the JSON dict) as rich tables, or as Markdown for the README."""

from __future__ import annotations

from typing import Any

from bench.stats import fmt_bytes, fmt_ms, fmt_num, fmt_ratio


def tps_cell(s: dict[str, Any]) -> str:
    """tok/s of a level: '612.3', or for one measured in paired rounds '612.3 (540..650)' (median, min..max)."""
    text = fmt_num(s.get("tokens_per_s"))
    lo, hi = s.get("tokens_per_s_min"), s.get("tokens_per_s_max")
    if lo is not None and hi is not None and (s.get("paired_rounds") or 0) > 1:
        text += f" ({fmt_num(lo, 0)}..{fmt_num(hi, 0)})"
    return text


def level_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per (system, concurrency): the columns of `COLUMNS`."""
    rows: list[list[str]] = []
    systems: list[tuple[str, dict[str, Any] | None]] = [("server", report.get("server")),
                                                         ("server (engine process)", report.get("server_process"))]
    systems += list((report.get("peer") or {}).items())
    for name, section in systems:
        if not section:
            continue
        if "error" in section:
            rows.append([name, "-", "unavailable", "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        for level, s in section.items():
            ttft, itl = s.get("ttft_s") or {}, s.get("itl_s") or {}
            peak = s.get("gpu_peak_bytes") or s.get("peak_rss_bytes")
            rows.append([
                name,
                level.removeprefix("c"),
                tps_cell(s),
                fmt_num(s.get("requests_per_s"), 2),
                fmt_ms(ttft.get("p50")),
                fmt_ms(ttft.get("p95")),
                fmt_ms(itl.get("p50")),
                fmt_ms(itl.get("p95")),
                fmt_bytes(peak),
                fmt_num(s.get("mean_tokens_per_request"), 1),
                str(s.get("errors", 0)),
            ])
    for level, s in (report.get("engine") or {}).items():
        if "error" in s:
            rows.append(["engine (no HTTP)", level.removeprefix("c"), "error", "-", "-", "-", "-", "-", "-", "-", "1"])
            continue
        ttft, itl = s.get("ttft_s") or {}, s.get("itl_s") or {}
        rows.append(["engine (no HTTP)", level.removeprefix("c"), tps_cell(s),
                     fmt_num(s.get("requests_per_s"), 2), fmt_ms(ttft.get("p50")), fmt_ms(ttft.get("p95")),
                     fmt_ms(itl.get("p50")), fmt_ms(itl.get("p95")), "-",
                     fmt_num((s.get("completion_tokens") or 0) / max(1, s.get("requests") or 1), 1), "0"])
    raw = report.get("raw") or {}
    if "error" not in raw:
        for level, s in raw.items():
            rows.append(["raw generate", level.removeprefix("b"), tps_cell(s), "-", "-", "-",
                         "-", "-", fmt_bytes(s.get("peak_gpu_bytes")),
                         fmt_num((s.get("new_tokens") or 0) / max(1, s.get("sequences") or 1), 1),
                         "1" if "error" in s else "0"])
    return rows


COLUMNS = ["system", "conc.", "tok/s", "req/s", "TTFT p50 ms", "TTFT p95 ms", "ITL p50 ms", "ITL p95 ms",
           "peak mem", "tok/req", "errors"]


def ratio_cell(r: dict[str, Any]) -> str:
    """'0.85x', or for a median of per-round ratios '0.85x (median of 5: 0.71..0.98)'."""
    text = fmt_ratio(r.get("value"))
    n = r.get("rounds")
    if n and r.get("value") is not None:
        text += (f" (median of {n}: {r['min']:.2f}..{r['max']:.2f})" if n > 1 else " (1 round)")
    return text


def ratio_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in report.get("ratios") or []:
        target = r["target"] or None
        rows.append([r["name"], ratio_cell(r), f">= {target:g}" if target else "(info)",
                     r["verdict"] if target else "-"])
    return rows


SYSTEM_TITLES = {"raw": "raw b=1 tok/s", "engine": "engine c1 tok/s", "server": "server c1 tok/s",
                 "server_process": "server (engine process) c1 tok/s"}


def rounds_columns(report: dict[str, Any]) -> list[str]:
    single = report.get("single_stream") or {}
    systems = [SYSTEM_TITLES.get(x, f"{x} tok/s") for x in single.get("systems") or []]
    # " / " so that a narrow console wraps the header and the cells rather than cutting them (4 systems)
    others = " / ".join(single.get("systems") or [])
    return ["round", "order", *systems, *(single.get("ratios") or {}), f"other CPU, cores ({others})"]


def rounds_rows(report: dict[str, Any]) -> list[list[str]]:
    """The paired single-stream rounds (bench/2), then their median, min and max; [] for older runs."""
    single = report.get("single_stream") or {}
    systems: list[str] = single.get("systems") or []
    pairs: list[str] = list(single.get("ratios") or {})
    if not single.get("rounds"):
        return []
    rows = []
    for r in single["rounds"]:
        tps, ratios = r.get("tokens_per_s") or {}, r.get("ratios") or {}
        other = r.get("other_cpu_cores") or {}
        rows.append([str(r.get("round")), " > ".join(r.get("order") or []),
                     *(fmt_num(tps.get(x)) if tps.get(x) is not None else "error" for x in systems),
                     *(fmt_ratio(ratios.get(k)) for k in pairs),
                     " / ".join(fmt_num(other.get(x), 2) for x in systems) if other else "-"])
    stats, rstats = single.get("tokens_per_s") or {}, single.get("ratios") or {}
    for what in ("median", "min", "max"):
        rows.append([what, "-", *(fmt_num((stats.get(x) or {}).get(what)) for x in systems),
                     *(fmt_ratio((rstats.get(k) or {}).get(what)) for k in pairs), "-"])
    return rows


def suite_rows(report: dict[str, Any]) -> list[list[str]]:
    s = report.get("suite")
    if not s:
        return []
    if "error" in s:
        return [["conformance run", "error", s["error"][:200], "-"]]
    t = s["targets"]
    return [
        ["wall time (process)", f"{s['process_wall_s']:.1f} s", f"<= {t['wall_s']['target']:g} s",
         t["wall_s"]["verdict"]],
        ["duration_s (results.json)", f"{s['duration_s']:.1f} s", "-", "-"],
        ["requests", str(s["requests"]), f"<= {t['requests']['target']}", t["requests"]["verdict"]],
        ["tokens (prompt + completion)", f"{s['total_tokens']} ({s['prompt_tokens']} + {s['completion_tokens']})",
         f"<= {t['tokens']['target']}", t["tokens"]["verdict"]],
        ["verdict / exit status", f"{s.get('verdict')} / {s.get('exit_status')}", "-", "-"],
    ]


def gpu_rows(report: dict[str, Any]) -> list[list[str]]:
    g = report.get("gpu")
    if not g:
        return []
    rows = [
        ["parameters", f"{g.get('parameters', 0) / 1e9:.2f} B"],
        ["weight bytes / token", fmt_bytes(g.get("weight_bytes_per_token"))],
        ["copy bandwidth", f"{(g.get('copy_bandwidth_bytes_per_s') or 0) / 1e9:.0f} GB/s"],
        ["bandwidth limit", f"{fmt_num(g.get('bandwidth_limit_tokens_per_s'))} tok/s"],
        ["server decode b=1 (1/ITL p50)", f"{fmt_num(g.get('server_decode_b1_tokens_per_s'))} tok/s"],
    ]
    if "server_process_decode_b1_tokens_per_s" in g:
        rows.append(["server (engine process) decode b=1 (1/ITL p50)",
                     f"{fmt_num(g.get('server_process_decode_b1_tokens_per_s'))} tok/s"])
    for name in ("raw_decode_eager", "raw_decode_static_compiled"):
        e = g.get(name) or {}
        rows.append([name, e["error"][:120] if "error" in e else f"{fmt_num(e.get('tokens_per_s'))} tok/s "
                     f"({(e.get('fraction_of_limit') or 0) * 100:.0f}% of limit)"])
    return rows


def header_lines(report: dict[str, Any]) -> list[str]:
    m = report.get("machine") or {}
    a = report.get("args") or {}
    lines = [
        f"machine: {m.get('cpu')} x{m.get('cpu_count')}"
        + (f", {m['gpu']}" if m.get("gpu") else "")
        + f"; torch {m.get('torch')} ({m.get('torch_threads')} threads), transformers {m.get('transformers')}",
        f"model: {a.get('model') or a.get('model_size')} on {a.get('device')}; max_tokens {a.get('max_tokens')}, "
        f"greedy, EOS ignored; threads {a.get('threads') or 'default'}; load average start {report.get('loadavg_start')} end {report.get('loadavg_end')}",
    ]
    if "server_process" in report:
        on_default = report.get("server_default_engine_process") == "on"  # older results: off was the default
        lines.append(f"server: `--engine-process off` ({'' if on_default else 'default, '}engine thread in the server "
                     f"process); server (engine process): `--engine-process on` ({'default, ' if on_default else ''}"
                     "model in a spawned child process; its peak mem counts the child); both up together, measured "
                     "back to back")
    single = report.get("single_stream") or {}
    if single.get("rounds"):
        lines.append(
            f"single stream ({', '.join(SYSTEM_TITLES.get(x, x).removesuffix(' tok/s') for x in single.get('systems') or [])}): "
            f"{len(single['rounds'])} paired rounds of "
            f"{single.get('requests')} requests x {single.get('max_tokens')} tokens, back to back, order reversed "
            "every other round; their tok/s are medians (min..max over the rounds), their ratios medians of "
            "the per-round ratios")
    for mode, sec in (report.get("peer") or {}).items():
        if "error" in sec:
            lines.append(f"{mode}: unavailable: {sec['error'].strip().splitlines()[-1][:300]}")
    for name, title in (("raw", "raw"), ("server", "server"), ("server_process", "server (engine process)")):
        sec = report.get(name) or {}
        if "error" in sec:
            lines.append(f"{title}: error: {sec['error'][:300]}")
    return lines


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(width=160)
    for line in header_lines(report):
        console.print(line, markup=False, highlight=False)
    levels = _table("Streaming /v1/completions (closed loop, same run)", COLUMNS, level_rows(report), ("system",))
    console.print(levels)
    console.print(_table("Ratios measured in this run", ["ratio", "value", "target", "verdict"], ratio_rows(report)))
    if rounds_rows(report):
        pt = _table(
            "Single stream: paired rounds (each ratio within one round)",
            rounds_columns(report),
            rounds_rows(report),
            ("round", "order"),
        )
        # With the engine-process server (4 systems, 5 ratios) 160 columns would cut headers and cells.
        wide = len((report.get("single_stream") or {}).get("systems") or []) > 3
        (Console(width=200) if wide else console).print(pt)
    if gpu_rows(report):
        title = "GPU: batch-1 decode against the memory-bandwidth limit"
        console.print(_table(title, ["figure", "value"], gpu_rows(report), ("figure",)))
    if suite_rows(report):
        st = _table(
            "Suite cost: default `conformance run` against the embedded server",
            ["figure", "value", "target", "verdict"],
            suite_rows(report),
        )
        console.print(st)


def _table(title: str, columns: list[str], rows: list[list[str]], left: tuple[str, ...] | None = None) -> Any:
    """A rich table; with `left`, those columns are left-aligned and the others right-aligned."""
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if left is None or col in left else "right")
    for row in rows:
        table.add_row(*row)
    return table


def markdown(report: dict[str, Any]) -> str:
    """The tables as Markdown (for the README)."""

    def table(cols: list[str], rows: list[list[str]]) -> str:
        out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)

    parts = ["\n".join(f"- {line}" for line in header_lines(report)), table(COLUMNS, level_rows(report)),
             table(["ratio", "value", "target", "verdict"], ratio_rows(report))]
    if rounds_rows(report):
        parts.append(table(rounds_columns(report), rounds_rows(report)))
    if gpu_rows(report):
        parts.append(table(["figure", "value"], gpu_rows(report)))
    if suite_rows(report):
        parts.append(table(["figure", "value", "target", "verdict"], suite_rows(report)))
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report RESULT.json [--markdown]`: re-render a saved run."""
    import argparse
    import json
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    p.add_argument("result", type=Path)
    p.add_argument("--markdown", action="store_true", help="print Markdown tables (for the README)")
    args = p.parse_args(argv)
    data = json.loads(args.result.read_text(encoding="utf-8"))
    if args.markdown:
        print(markdown(data), end="")
    else:
        print_report(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
