"""Benchmarks of the real pipeline on the real services, each beside a baseline measured in the same run."""
