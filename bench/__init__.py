"""Benchmarks: the sweeps at scale and the API, each measured beside its alternative."""
