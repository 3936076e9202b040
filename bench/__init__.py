"""Benchmarks for the reference server and the conformance suite (`python -m bench --help`).

Every comparison is a ratio measured in one run, against baselines on the same model and device:
raw in-process `model.generate` and the peer server that ships with transformers
(`transformers serve`, with and without `--continuous-batching`). See `bench/README.md`.
"""
