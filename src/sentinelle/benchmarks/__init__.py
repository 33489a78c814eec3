"""Benchmarks: synthetic corpora and measurement commands (not part of the unit tests)."""
