"""Benchmarks of the pipeline against the example-script recipe and a raw PyTorch loop."""
