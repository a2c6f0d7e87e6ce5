"""Benchmarks: each prints a table, compares against a baseline measured in the same run,
and writes its figures as JSON (``bench-results/<name>.json`` by default)."""
