"""Benchmarks whose figures the issues ask for; run them with `python -m benchmarks.<name>`."""
