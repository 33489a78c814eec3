"""Benchmarks: synthetic corpora, quality, speed and serving measurements (commands, not unit
tests)."""
