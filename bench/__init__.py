"""Benchmarks behind `make bench`: each module measures one thing side by side with its baseline."""
