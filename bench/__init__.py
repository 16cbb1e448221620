"""Benchmarks: each module prints its results; `make bench` runs them all (results: docs/benchmarks.md)."""
