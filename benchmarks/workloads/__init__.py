"""Benchmark workloads, one module per framework.

The modules in this package are imported by ``benchmarks/worker.py`` inside the
interpreter under test. ``common`` and ``shapes`` use only the standard library
so that the rivers interpreter never needs Dagster and vice versa.
"""
