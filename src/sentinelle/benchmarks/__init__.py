"""Benchmarks: commands that measure, not tests (run them with ``python -m sentinelle.benchmarks.<name>``)."""
