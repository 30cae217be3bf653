"""Benchmarks: commands that measure codeflow side by side with its peers."""
