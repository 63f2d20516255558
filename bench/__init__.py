"""Benchmarks: `python bench/throughput.py` (see docs/benchmarks.md)."""
