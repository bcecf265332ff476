"""Benchmarks behind `m2aenet bench`: each prints a table and writes JSON rows."""
