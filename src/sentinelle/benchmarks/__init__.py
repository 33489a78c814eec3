"""Benchmarks: commands that measure the project, not unit tests."""
