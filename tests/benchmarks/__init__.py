"""Benchmarks of the engine against in-process and Temporal baselines (issue 6); not unit tests."""
