"""Benchmarks of asr_resilience (run with `make bench`)."""
