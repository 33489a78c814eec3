"""Developer tooling for Sentinelle: benchmarks, the local S3 server, the run-cache helper.

Not part of the installed package and never imported by it (import-linter checks);
run from the repository root with ``PYTHONPATH=src python -m sentinelle_tools.<tool>``.
"""
