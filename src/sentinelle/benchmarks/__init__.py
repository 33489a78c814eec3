"""Benchmarks: synthetic corpora, quality and speed measurements (commands, not unit tests)."""
