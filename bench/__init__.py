"""Benchmarks: each module prints its results; `python -m bench.run_all` runs them all."""
