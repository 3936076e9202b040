"""The paired single-stream rounds: order alternation, per-round ratios and their median, pooling,
rendering. Synthetic numbers only; no timing is asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `bench` is a repository folder, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import cli, paired, report, stats  # noqa: E402
from bench.engine_direct import EngineResult  # noqa: E402
from bench.loadgen import LoadResult, RequestResult  # noqa: E402
from bench.raw import RawResult, stock_attention  # noqa: E402


def test_round_order_alternates_and_keeps_raw_next_to_both_sides() -> None:
    # Without the engine-process server (--no-engine-process): the order the bench always had.
    systems = [s for s in paired.SINGLE_STREAM_ORDER if s != "server_process"]
    orders = [paired.round_order(i, systems) for i in range(5)]
    assert orders[0] == ["engine", "raw", "server"]
    assert orders[1] == ["server", "raw", "engine"]
    assert orders[2] == orders[0] and orders[3] == orders[1] and orders[4] == orders[0]
    for order in orders:  # raw is adjacent to both systems it is compared with
        assert order[1] == "raw"
    raw_first = [o.index("raw") < o.index("server") for o in orders]
    assert raw_first == [True, False, True, False, True]
    assert paired.round_order(1, ["raw", "server"]) == ["server", "raw"]
    assert paired.round_order(7, ["raw"]) == ["raw"]


def test_round_order_with_the_engine_process_server() -> None:
    systems = list(paired.SINGLE_STREAM_ORDER)
    orders = [paired.round_order(i, systems) for i in range(4)]
    assert orders[0] == ["engine", "server_process", "raw", "server"]
    assert orders[1] == ["server", "raw", "server_process", "engine"]
    for order in orders:  # raw is adjacent to both servers (the two ratios with targets)
        i = order.index("raw")
        assert {order[i - 1], order[i + 1]} == {"server", "server_process"}
    for server in ("server", "server_process"):  # which side runs first alternates
        assert [o.index("raw") < o.index(server) for o in orders] in ([True, False] * 2, [False, True] * 2)
    assert ("server_process", "raw") in paired.SINGLE_STREAM_PAIRS
    assert ("server_process", "server") in paired.SINGLE_STREAM_PAIRS


class Script:
    """Fake measures: a scripted tok/s per system per call, and the order in which they were called."""

    def __init__(self, figures: dict[str, list[float | Exception | None]]) -> None:
        self.figures = {k: list(v) for k, v in figures.items()}
        self.calls: list[str] = []

    def measures(self) -> dict[str, Any]:
        def make(system: str) -> Any:
            def measure() -> paired.Sample:
                self.calls.append(system)
                value = self.figures[system].pop(0)
                if isinstance(value, Exception):
                    raise value
                return paired.Sample(value, wall_s=1.0, detail=(system, value) if value is not None else None,
                                     error=None if value is not None else "HTTP 500")
            return measure

        # dict order deliberately not round 1's order: run_paired_rounds imposes SINGLE_STREAM_ORDER
        return {s: make(s) for s in ("server", "raw", "engine") if s in self.figures}


def test_median_of_per_round_ratios_not_ratio_of_medians() -> None:
    # Machine speed drifts from round to round; within a round both sides see the same speed.
    raw = [1000.0, 500.0, 800.0, 400.0, 900.0]
    server = [850.0, 425.0, 560.0, 360.0, 810.0]  # per round: 0.85, 0.85, 0.70, 0.90, 0.90
    script = Script({"raw": raw, "server": server})
    result = paired.run_paired_rounds(5, script.measures())
    assert result.systems == ["raw", "server"]
    assert result.pairs == [("server", "raw")]
    assert script.calls == ["raw", "server", "server", "raw", "raw", "server", "server", "raw", "raw", "server"]
    assert result.ratios("server", "raw") == pytest.approx([0.85, 0.85, 0.70, 0.90, 0.90])
    st = result.ratio_stats()["server / raw"]
    assert st["median"] == pytest.approx(0.85)
    assert st["min"] == pytest.approx(0.70) and st["max"] == pytest.approx(0.90) and st["n"] == 5
    # The ratio of the medians of the two columns (what unpaired runs approximate) would differ:
    tps = result.tokens_per_s_stats()
    assert tps["server"]["median"] / tps["raw"]["median"] == pytest.approx(560.0 / 800.0)
    assert tps["raw"] == {"median": 800.0, "min": 400.0, "max": 1000.0, "n": 5}


def test_three_systems_all_pairs_and_a_failed_round() -> None:
    script = Script({
        "raw": [100.0, 100.0, 100.0, 100.0],
        "engine": [90.0, 95.0, RuntimeError("engine broke"), 80.0],
        "server": [80.0, None, 70.0, 60.0],  # round 2: requests failed
    })
    logged: list[str] = []
    result = paired.run_paired_rounds(4, script.measures(), log=logged.append)
    assert script.calls[:3] == ["engine", "raw", "server"] and script.calls[3:6] == ["server", "raw", "engine"]
    assert [paired.pair_key(n, d) for n, d in result.pairs] == ["server / raw", "engine / raw", "server / engine"]
    per_round = result.ratios("server", "raw")
    assert per_round[1] is None and per_round[0::2] == pytest.approx([0.8, 0.7]) and per_round[3] == pytest.approx(0.6)
    st = result.ratio_stats()
    assert st["server / raw"]["n"] == 3 and st["server / raw"]["median"] == pytest.approx(0.7)
    assert st["engine / raw"]["n"] == 3 and st["engine / raw"]["median"] == pytest.approx(0.9)
    assert st["server / engine"]["n"] == 2  # rounds 1 and 4 only
    assert st["server / engine"]["median"] == pytest.approx((80 / 90 + 60 / 80) / 2)  # even count: mean of two
    d = result.as_dict()
    assert [r["round"] for r in d["rounds"]] == [1, 2, 3, 4]
    assert d["rounds"][2]["errors"] == {"engine": "RuntimeError: engine broke"}
    assert d["rounds"][1]["errors"] == {"server": "HTTP 500"}
    assert d["rounds"][1]["tokens_per_s"]["server"] is None
    assert result.details("engine") == [("engine", 90.0), ("engine", 95.0), ("engine", 80.0)]
    json.dumps(d)
    assert any("engine failed" in line for line in logged) and len([x for x in logged if "/4:" in x]) == 4


def test_probe_is_recorded_per_system_and_rounds_validated() -> None:
    class Probe:
        n = 0

        def __enter__(self) -> Probe:
            return self

        def __exit__(self, *exc: object) -> None:
            Probe.n += 1
            self.cores = Probe.n / 10

    result = paired.run_paired_rounds(2, Script({"raw": [1.0, 2.0], "server": [1.0, 1.0]}).measures(), probe=Probe)
    assert result.rounds[0].other_cpu == {"raw": pytest.approx(0.1), "server": pytest.approx(0.2)}
    assert result.as_dict()["rounds"][1]["other_cpu_cores"] == {"server": pytest.approx(0.3),
                                                                "raw": pytest.approx(0.4)}
    with pytest.raises(ValueError):
        paired.run_paired_rounds(0, {})


def test_spread_and_paired_ratio_check() -> None:
    assert stats.spread([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert stats.spread([1.0, 4.0])["median"] == 2.5
    assert stats.spread([None]) == {"median": None, "min": None, "max": None, "n": 0}
    check = stats.RatioCheck("a / b", "a", "b", 0.82, 0.8, 0.6, 1.0, 5)
    assert check.verdict == "PASS"
    assert check.as_dict()["rounds"] == 5 and check.as_dict()["min"] == 0.6
    assert "rounds" not in stats.RatioCheck("a / b", "a", "b", 1.0, 0.8).as_dict()  # bench/1 shape


def _load(tps_wall: float, n: int = 2, tokens: int = 16) -> LoadResult:
    results = [RequestResult(ok=True, started=0.0, ended=tps_wall / n, ttft=0.01, itls=[0.002] * (tokens - 1),
                             completion_tokens=tokens) for _ in range(n)]
    return LoadResult("server", 1, n, tokens, tps_wall, results)


def _rounds_report(server_walls: list[float], raw_tps: list[float],
                   process_walls: list[float] | None = None) -> tuple[dict[str, Any], Any]:
    """A report whose single stream comes from synthetic rounds (server: 2 x 16 tokens per round);
    with `process_walls`, the engine-process server too (else the run is --no-engine-process)."""
    argv = ["--short", "--rounds", str(len(raw_tps))] + ([] if process_walls else ["--no-engine-process"])
    args = cli.resolve_args(cli.build_parser().parse_args(argv))
    raws = iter(raw_tps)
    loads = iter(server_walls)
    proc_loads = iter(process_walls or [])

    def raw() -> paired.Sample:
        tps = next(raws)
        r = RawResult("raw generate b=1", 1, 2, 32, 32 / tps)
        return paired.Sample(r.tokens_per_s, r.wall_s, detail=r)

    def server() -> paired.Sample:
        r = _load(next(loads))
        return paired.Sample(r.tokens_per_s, r.wall_s, detail=r)

    def engine() -> paired.Sample:
        r = EngineResult(1, 2, 32, 0.05, [0.004, 0.005], [0.001] * 30, {"prefills": 2})
        return paired.Sample(r.tokens_per_s, r.wall_s, detail=r)

    def server_process() -> paired.Sample:
        r = _load(next(proc_loads))
        return paired.Sample(r.tokens_per_s, r.wall_s, detail=r)

    measures = {"raw": raw, "server": server, "engine": engine}
    if process_walls:
        measures["server_process"] = server_process
    rounds = paired.run_paired_rounds(len(raw_tps), measures)
    rep: dict[str, Any] = {"raw": {"b8": {"tokens_per_s": 2000.0, "new_tokens": 128, "sequences": 8}},
                           "engine": {"c8": EngineResult(8, 8, 128, 0.1).summary()}}
    c1 = cli.record_single_stream(args, rounds, rep)
    assert set(c1) == ({"server", "server_process"} if process_walls else {"server"})
    rep["server"] = {"c1": c1["server"], "c8": _load(0.05, 8).summary()}  # 8 x 16 tokens in 0.05 s: 2560 tok/s
    if process_walls:
        rep["server_process"] = {"c1": c1["server_process"], "c8": _load(0.04, 8).summary()}  # 3200 tok/s
    return rep, args


def test_record_single_stream_pools_and_uses_medians() -> None:
    # server tok/s per round: 32/0.1=320, 32/0.05=640, 32/0.08=400 -> median 400; raw 400, 800, 500
    rep, args = _rounds_report([0.1, 0.05, 0.08], [400.0, 800.0, 500.0])
    c1 = rep["server"]["c1"]
    assert c1["tokens_per_s"] == pytest.approx(400.0)
    assert (c1["tokens_per_s_min"], c1["tokens_per_s_max"]) == (pytest.approx(320.0), pytest.approx(640.0))
    assert c1["tokens_per_s_pooled"] == pytest.approx(96 / 0.23)
    assert c1["requests"] == 6 and c1["completion_tokens"] == 96 and c1["paired_rounds"] == 3
    assert c1["requests_per_s"] == pytest.approx(2 / 0.08)  # median of 20, 40, 25
    assert list(rep["raw"]) == ["b1", "b8"] and list(rep["engine"]) == ["c1", "c8"]
    assert rep["raw"]["b1"]["tokens_per_s"] == pytest.approx(500.0) and rep["raw"]["b1"]["new_tokens"] == 96
    assert rep["engine"]["c1"]["requests"] == 6 and rep["engine"]["c1"]["ttft_s"]["n"] == 6
    single = rep["single_stream"]
    assert single["rounds_requested"] == 3 and single["requests"] == 2 and single["max_tokens"] == 16
    # per-round server/raw: 320/400=0.8, 640/800=0.8, 400/500=0.8
    assert single["ratios"]["server / raw"]["median"] == pytest.approx(0.8)

    checks = {c.name: c for c in cli.compute_ratios(rep, args)}
    single_check = checks["server_single / raw_generate_single"]
    assert single_check.value == pytest.approx(0.8) and single_check.rounds == 3
    assert single_check.verdict == "PASS"
    # The same medians as separate measurements would give 400/500 = 0.8 too; c8/c1 uses the median c1.
    assert checks["server_c8 / server_c1"].value == pytest.approx(rep["server"]["c8"]["tokens_per_s"] / 400.0)
    assert checks["engine_c1 / raw_generate_single"].rounds == 3
    assert checks["server_c1 / engine_c1"].rounds == 3


def test_verdict_follows_median_of_per_round_ratios() -> None:
    # Rounds where the machine was fast for raw but slow for the server's turn and vice versa:
    # per-round ratios 0.5, 0.9, 0.9 -> median 0.9 PASS, though one round alone would MISS.
    rep, args = _rounds_report([32 / 250, 32 / 900, 32 / 450], [500.0, 1000.0, 500.0])
    ratios = rep["single_stream"]["ratios"]["server / raw"]
    assert ratios["median"] == pytest.approx(0.9) and ratios["min"] == pytest.approx(0.5)
    check = next(c for c in cli.compute_ratios(rep, args) if c.name == "server_single / raw_generate_single")
    assert check.verdict == "PASS" and check.low == pytest.approx(0.5) and check.high == pytest.approx(0.9)


def test_rounds_render_in_both_formats() -> None:
    rep, args = _rounds_report([0.1, 0.05, 0.08], [400.0, 800.0, 500.0])
    rep["schema"] = "bench/2"
    rep["ratios"] = [c.as_dict() for c in cli.compute_ratios(rep, args)]
    md = report.markdown(rep)
    assert "0.80x (median of 3: 0.80..0.80)" in md
    assert "| 1 | engine > raw > server |" in md and "| 2 | server > raw > engine |" in md
    assert "| median | - |" in md
    assert "400.0 (320..640)" in md  # the c1 row shows the median and the spread
    assert "3 paired rounds" in md
    report.print_report(rep)
    json.dumps(rep)


@pytest.mark.parametrize("path", sorted((ROOT / "bench" / "results").glob("*.json")), ids=lambda p: p.name)
def test_saved_results_still_render(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    md = report.markdown(data)
    assert "server_single / raw_generate_single" in md
    report.print_report(data)


def test_rounds_argument() -> None:
    parse = cli.build_parser().parse_args
    assert cli.resolve_args(parse([])).rounds == 5
    assert cli.resolve_args(parse(["--short"])).rounds == 3
    assert cli.resolve_args(parse(["--short", "--rounds", "7"])).rounds == 7
    with pytest.raises(SystemExit):
        cli.resolve_args(parse(["--rounds", "0"]))


def test_stock_attention_switches_back_and_forth() -> None:
    class Config:
        _attn_implementation = "engine_padding_invariant"

    class Model:
        config = Config()
        seen: list[str] = []

        def set_attn_implementation(self, name: str) -> None:
            self.seen.append(name)
            self.config._attn_implementation = name

    model = Model()
    with stock_attention(model, "sdpa"):
        assert model.config._attn_implementation == "sdpa"
    assert model.config._attn_implementation == "engine_padding_invariant"
    assert model.seen == ["sdpa", "engine_padding_invariant"]
    with stock_attention(model, "engine_padding_invariant"), stock_attention(model, None):
        pass
    assert model.seen == ["sdpa", "engine_padding_invariant"]  # nothing to switch


def test_pooled_results() -> None:
    raw = RawResult.pooled([RawResult("r", 1, 2, 32, 0.1, None), RawResult("r", 1, 2, 32, 0.3, 5)])
    assert (raw.sequences, raw.new_tokens, raw.wall_s, raw.peak_gpu_bytes) == (4, 64, pytest.approx(0.4), 5)
    eng = EngineResult.pooled([EngineResult(1, 2, 32, 0.1, [0.01], [0.001]), EngineResult(1, 2, 32, 0.1, [0.02])])
    assert eng.summary()["ttft_s"]["n"] == 2 and eng.tokens_per_s == pytest.approx(320.0)
    with pytest.raises(ValueError):
        RawResult.pooled([])


def test_other_cpu_probe_reads() -> None:
    import os

    from bench.servers import OtherCpu

    with OtherCpu([os.getpid()]) as probe:
        sum(range(10_000))
    assert probe.cores is None or probe.cores >= 0.0


def test_engine_process_server_in_the_rounds_and_its_ratios() -> None:
    # server tok/s per round: 320, 640, 400; the engine-process server: 32/0.08=400, 32/0.04=800, 32/0.064=500;
    # raw: 400, 800, 500 -> server_process / raw 1.0 every round, server_process / server 1.25 every round.
    rep, args = _rounds_report([0.1, 0.05, 0.08], [400.0, 800.0, 500.0], [0.08, 0.04, 0.064])
    single = rep["single_stream"]
    assert single["systems"] == ["engine", "server_process", "raw", "server"]
    assert [r["order"] for r in single["rounds"][:2]] == [["engine", "server_process", "raw", "server"],
                                                          ["server", "raw", "server_process", "engine"]]
    assert single["ratios"]["server_process / raw"]["median"] == pytest.approx(1.0)
    assert single["ratios"]["server_process / server"]["median"] == pytest.approx(1.25)
    c1 = rep["server_process"]["c1"]
    assert c1["tokens_per_s"] == pytest.approx(500.0) and c1["paired_rounds"] == 3 and c1["requests"] == 6
    assert c1["label"] == "server_process" and rep["server"]["c1"]["label"] == "server"

    checks = {c.name: c for c in cli.compute_ratios(rep, args)}
    # The default server's rows are the ones it always had.
    assert checks["server_single / raw_generate_single"].value == pytest.approx(0.8)
    assert checks["server_c8 / server_c1"].value == pytest.approx(2560.0 / 400.0)
    single_check = checks["server_process_c1 / raw_generate_single"]
    assert single_check.value == pytest.approx(1.0) and single_check.rounds == 3
    assert single_check.target == cli.TARGET_SINGLE_VS_RAW and single_check.verdict == "PASS"
    assert checks["server_process_c8 / server_process_c1"].value == pytest.approx(3200.0 / 500.0)
    assert checks["server_process_c8 / server_process_c1"].target == cli.TARGET_C32_VS_C1
    peer = checks["server_process_c8 / peer_best_c8"]  # no peer in this report
    assert peer.value is None and peer.verdict == "N/A" and peer.target == cli.TARGET_C32_VS_PEER
    assert checks["server_process_c1 / server_c1"].value == pytest.approx(1.25)
    assert checks["server_process_c1 / server_c1"].rounds == 3 and checks["server_process_c1 / server_c1"].target == 0
    assert checks["server_process_c8 / server_c8"].value == pytest.approx(3200.0 / 2560.0)

    rep["schema"] = "bench/2"
    rep["ratios"] = [c.as_dict() for c in checks.values()]
    md = report.markdown(rep)
    assert "| 1 | engine > server_process > raw > server |" in md
    assert "server (engine process) c1 tok/s" in md and "| server (engine process) | 8 |" in md
    assert "| server_process_c1 / raw_generate_single | 1.00x (median of 3: 1.00..1.00) | >= 0.8 | PASS |" in md
    assert "`--engine-process on`" in md
    report.print_report(rep)
    json.dumps(rep)


def test_no_engine_process_drops_its_rows() -> None:
    rep, args = _rounds_report([0.1, 0.05, 0.08], [400.0, 800.0, 500.0])
    assert args.no_engine_process and cli.server_modes(args) == ["server"]
    assert rep["single_stream"]["systems"] == ["engine", "raw", "server"]
    assert not [c for c in cli.compute_ratios(rep, args) if "server_process" in c.name]
    assert "engine process" not in report.markdown(rep)
