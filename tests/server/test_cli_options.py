"""reference-server's engine options: what each flag hands to the engine."""

from __future__ import annotations

from reference_server.cli import build_parser, engine_options


def test_defaults_leave_gpu_options_to_the_engine_and_run_it_in_a_child_process() -> None:
    args = build_parser().parse_args([])
    assert args.engine_process == "on"
    assert engine_options(args) == {"max_batch": 32, "max_queue": 256, "cuda_graphs": None, "compile_pieces": None}


def test_gpu_options_can_be_turned_off() -> None:
    args = build_parser().parse_args(["--cuda-graphs", "off", "--compile", "off", "--max-batch", "64"])
    opts = engine_options(args)
    assert opts["cuda_graphs"] is False and opts["compile_pieces"] is False and opts["max_batch"] == 64
