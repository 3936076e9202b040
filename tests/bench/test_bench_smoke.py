"""The benchmark's helpers and argument handling. No timing is asserted anywhere."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `bench` is a repository folder, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import cli, report, stats  # noqa: E402
from bench.loadgen import LoadResult, RequestResult, _text_of, completion_body  # noqa: E402


def test_percentile_matches_linear_interpolation() -> None:
    data = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert stats.percentile(data, 0) == 1.0
    assert stats.percentile(data, 50) == 3.0
    assert stats.percentile(data, 100) == 5.0
    assert stats.percentile(data, 95) == pytest.approx(4.8)
    assert stats.percentile([7.0], 95) == 7.0
    assert stats.percentile([], 50) is None
    with pytest.raises(ValueError):
        stats.percentile(data, 101)


def test_summarize_and_ratios() -> None:
    s = stats.summarize([0.01, 0.02, 0.03, 0.04])
    assert s["p50"] == pytest.approx(0.025)
    assert s["n"] == 4
    assert stats.summarize([])["p95"] is None
    assert stats.safe_ratio(10.0, 4.0) == 2.5
    assert stats.safe_ratio(None, 4.0) is None
    assert stats.safe_ratio(1.0, 0.0) is None
    assert stats.fmt_ratio(None) == "n/a"
    assert stats.fmt_ratio(1.234) == "1.23x"
    assert stats.fmt_ratio(0.5, 0.8) == "0.50x (>= 0.8 MISS)"
    assert stats.fmt_ratio(2.0, 2) == "2.00x (>= 2 PASS)"
    assert stats.fmt_ms(0.0123) == "12.3"
    assert stats.fmt_bytes(3 * 1024 * 1024) == "3.0 MiB"
    check = stats.RatioCheck("a / b", "a", "b", 0.79, 0.8)
    assert check.verdict == "MISS"
    assert stats.RatioCheck("a / b", "a", "b", None, 0.8).verdict == "N/A"
    assert stats.RatioCheck("a / b", "a", "b", 4.0, 4.0).as_dict()["verdict"] == "PASS"


def _load(label: str, c: int, tokens_per_req: int, wall: float) -> LoadResult:
    results = [
        RequestResult(ok=True, started=0.0, ended=wall, ttft=0.01 * (i + 1), itls=[0.002, 0.003],
                      completion_tokens=tokens_per_req)
        for i in range(c)
    ]
    return LoadResult(label, c, c, tokens_per_req, wall, results)


def test_load_result_summary_and_ratios_on_synthetic_data() -> None:
    one = _load("server", 1, 16, 0.1)
    many = _load("server", 8, 16, 0.2)
    assert one.tokens_per_s == pytest.approx(160.0)
    assert many.summary()["tokens_per_s"] == pytest.approx(640.0)
    assert many.summary()["ttft_s"]["p50"] == pytest.approx(0.045)
    failed = LoadResult("x", 1, 1, 16, 1.0, [RequestResult(ok=False, started=0, ended=1, error="HTTP 500")])
    assert failed.tokens_per_s is None and failed.summary()["first_error"] == "HTTP 500"

    args = cli.resolve_args(cli.build_parser().parse_args(["--short"]))
    rep = {
        "server": {"c1": one.summary(), "c8": many.summary()},
        "server_process": {"c1": _load("server_process", 1, 16, 0.125).summary(),  # 128 tok/s
                           "c8": _load("server_process", 8, 16, 0.16).summary()},  # 800 tok/s
        "peer": {"peer-cb": {"c1": _load("peer-cb", 1, 16, 0.2).summary(),
                             "c8": _load("peer-cb", 8, 16, 0.4).summary()},
                 "peer": {"error": "no accelerate"}},
        "raw": {"b1": {"tokens_per_s": 200.0, "new_tokens": 32, "sequences": 2},
                "b8": {"tokens_per_s": 1000.0, "new_tokens": 128, "sequences": 8}},
    }
    checks = {c.name: c for c in cli.compute_ratios(rep, args)}
    assert checks["server_single / raw_generate_single"].value == pytest.approx(0.8)
    assert checks["server_c8 / peer_best_c8"].value == pytest.approx(2.0)
    assert checks["server_c8 / server_c1"].value == pytest.approx(4.0)
    assert checks["server_c8 / server_c1"].verdict == "PASS"
    # The engine-process server against the same targets (peer-cb c8: 320 tok/s; raw b1: 200 tok/s).
    assert checks["server_process_c8 / peer_best_c8"].value == pytest.approx(2.5)
    assert checks["server_process_c8 / peer_best_c8"].denominator == "peer-cb c8 tok/s"
    assert checks["server_process_c8 / peer_best_c8"].verdict == "PASS"
    assert checks["server_process_c1 / raw_generate_single"].value == pytest.approx(0.64)
    assert checks["server_process_c1 / raw_generate_single"].verdict == "MISS"
    assert checks["server_process_c8 / server_process_c1"].value == pytest.approx(6.25)
    assert checks["server_process_c8 / server_c8"].value == pytest.approx(1.25)
    assert checks["server_process_c8 / server_c8"].target == 0.0  # information
    rep["ratios"] = [c.as_dict() for c in checks.values()]
    md = report.markdown(rep)
    assert "server_c8 / server_c1" in md and "peer: unavailable" in md
    assert "| server_process_c8 / peer_best_c8 | 2.50x | >= 2 | PASS |" in md
    assert "| server_process_c8 / server_c8 | 1.25x | (info) | - |" in md
    assert "| server (engine process) | 8 | 800.0 |" in md
    report.print_report(rep)  # renders without error
    json.dumps(rep)


def test_server_command_lines_name_the_engine_mode() -> None:
    from bench.servers import reference_server_spec

    proc = reference_server_spec("tiny", device="cpu", max_batch=32, engine_process=True).command()
    default = reference_server_spec("tiny", device="cpu", max_batch=32).command()
    assert proc[proc.index("--engine-process") + 1] == "on"
    assert default[default.index("--engine-process") + 1] == "off"
    assert proc[1:3] == ["-m", "reference_server"] and "--max-batch" in proc and "--model" in proc
    assert [a for a in proc if a not in ("on", "off")] == [a for a in default if a not in ("on", "off")]
    assert cli.SERVER_MODES == {"server": False, "server_process": True}


def test_engine_process_flag() -> None:
    parse = cli.build_parser().parse_args
    assert cli.server_modes(cli.resolve_args(parse([]))) == ["server", "server_process"]
    assert cli.server_modes(cli.resolve_args(parse(["--short"]))) == ["server", "server_process"]  # CI runs it too
    assert cli.server_modes(cli.resolve_args(parse(["--no-engine-process"]))) == ["server"]


def test_gpu_memory_sums_the_process_tree() -> None:
    from bench.servers import _gpu_used_in

    smi = "100, 500\n101, 1000\n200, 7\nbad line\n"
    assert _gpu_used_in(smi, {100}) == 500 * 1024 * 1024
    assert _gpu_used_in(smi, {100, 101}) == 1500 * 1024 * 1024  # server + its engine process
    assert _gpu_used_in(smi, {300}) is None


def test_short_mode_arguments(tmp_path: Path) -> None:
    args = cli.resolve_args(cli.build_parser().parse_args(["--short"]))
    assert args.concurrency == [1, 8]
    assert args.max_tokens == 16
    assert args.no_suite is True
    assert args.peer_modes == ["peer-cb"]
    assert cli.requests_for(args, 1) == 2 and cli.requests_for(args, 8) == 8
    full = cli.resolve_args(cli.build_parser().parse_args([]))
    assert full.concurrency == [1, 8, 32] and full.max_tokens == 64 and full.max_batch == 32
    assert cli.requests_for(full, 32) == 64
    gpu = cli.resolve_args(cli.build_parser().parse_args(["--device", "cuda"]))
    assert gpu.model_size == "1b" and 64 in gpu.concurrency and gpu.max_batch == 64
    custom = cli.resolve_args(cli.build_parser().parse_args(
        ["--short", "--no-peer", "--concurrency", "1", "--requests", "2", "--out", "ci"]))
    assert custom.concurrency == [1] and cli.requests_for(custom, 1) == 2 and custom.no_peer
    assert cli.out_path("ci", custom) == cli.RESULTS_DIR / "ci.json"
    assert cli.out_path(str(tmp_path / "x.json"), custom) == tmp_path / "x.json"


def test_sse_text_extraction_and_request_body() -> None:
    assert _text_of({"choices": [{"text": "hi"}]}) == "hi"
    assert _text_of({"choices": [{"delta": {"content": "yo"}}]}) == "yo"
    assert _text_of({"choices": []}) == ""
    body = completion_body("tiny", "p", 16, extra={"ignore_eos": True})
    assert body["stream"] is True and body["temperature"] == 0 and body["ignore_eos"] is True
    peer = json.loads(cli.peer_extra_body(16)["generation_config"])
    assert peer["min_new_tokens"] == peer["max_new_tokens"] == 16


def test_gpu_module_imports_without_cuda() -> None:
    from bench import gpu

    assert gpu.LLAMA_1B["hidden_size"] == 2048
    assert callable(gpu.build_llama_1b) and callable(gpu.copy_bandwidth)


@pytest.mark.slow
def test_short_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "short.json"
    code = cli.main(["--short", "--no-peer", "--concurrency", "1", "--requests", "2", "--rounds", "2", "--quiet",
                     "--out", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["schema"] == "bench/2"
    level = data["server"]["c1"]  # every request of both paired rounds
    assert level["ok"] == 2 * 2 and level["errors"] == 0
    assert level["completion_tokens"] == 2 * 2 * 16  # ignore_eos: every request runs to max_tokens
    assert data["raw"]["b1"]["new_tokens"] == 2 * 2 * 16
    assert data["engine"]["c1"]["completion_tokens"] == 2 * 2 * 16
    proc = data["server_process"]["c1"]  # the --engine-process on server, in the same rounds
    assert proc["ok"] == 2 * 2 and proc["errors"] == 0 and proc["completion_tokens"] == 2 * 2 * 16
    single = data["single_stream"]
    assert [r["order"] for r in single["rounds"]] == [["engine", "server_process", "raw", "server"],
                                                      ["server", "raw", "server_process", "engine"]]
    assert all(r["errors"] == {} for r in single["rounds"])
    assert single["ratios"]["server / raw"]["n"] == 2
    assert single["ratios"]["server_process / raw"]["n"] == 2
    ratios = {r["name"]: r for r in data["ratios"]}
    assert ratios["server_single / raw_generate_single"]["rounds"] == 2
    assert ratios["server_single / raw_generate_single"]["value"] == single["ratios"]["server / raw"]["median"]
    assert ratios["server_process_c1 / raw_generate_single"]["value"] == \
        single["ratios"]["server_process / raw"]["median"]


def test_sse_events_are_split_across_reads_and_line_endings() -> None:
    from bench.loadgen import SSEEvents

    events = SSEEvents()
    stream = b'data: {"a": 1}\n\ndata: {"b"' + b': 2}\r\n\r\n: comment\n\ndata: [DONE]\n\n'
    got: list[bytes] = []
    for i in range(0, len(stream), 7):  # arbitrary read boundaries, CRLF split in the middle
        got += events.feed(stream[i : i + 7])
    assert got == [b'{"a": 1}', b'{"b": 2}', b"[DONE]"]
    assert events.feed(b"data: partial") == []


def test_a_stream_is_folded_into_times_tokens_and_errors() -> None:
    from bench.loadgen import _record

    res = RequestResult(ok=False, started=10.0, ended=10.0)
    _record(res, b'{"choices": [{"text": "Hi", "finish_reason": null}]}', 10.5)
    _record(res, b'{"choices": [{"text": " there", "finish_reason": null}]}', 10.75)
    _record(res, b'{"choices": [{"text": "", "finish_reason": "length"}], "usage": {"completion_tokens": 2}}', 11.0)
    _record(res, b"[DONE]", 11.0)
    assert (res.ttft, res.itls, res.text_chunks) == (0.5, [0.25], 2)
    assert (res.completion_tokens, res.finish_reason, res.error) == (2, "length", None)
    _record(res, b'{"error": {"message": "boom"}}', 11.1)
    assert res.error is not None and "boom" in res.error
    _record(res, b"not json", 11.2)
    assert res.error is not None and res.error.startswith("bad SSE data")


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "bench" / "results" / "gpu-decode")
                                        .glob("*.json")), ids=lambda p: p.name)
def test_saved_gpu_decode_results_render(path: Path) -> None:
    from bench.gpu_decode import markdown

    md = markdown(json.loads(path.read_text(encoding="utf-8")))
    assert "| decode mode |" in md and "of the limit" in md
