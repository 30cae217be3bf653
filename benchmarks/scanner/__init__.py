"""Scanner evaluation: `python -m benchmarks.scanner`."""
